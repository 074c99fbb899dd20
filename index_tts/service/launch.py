"""Choosing the engines at launch: inspect the model store, pick the engine `--engine` asks for
(or the best one available) for each model `--model` serves, and say why. The launcher (webui.py)
calls choose_models(), then init_synthesizer()."""

from __future__ import annotations

import logging
from pathlib import Path

from index_tts.engines import EngineUnavailable, select_engine, select_engine_25
from index_tts.model_store.doctor import inspect
from index_tts.model_store.layout import ModelFiles, open_model_files
from index_tts.service.models import ModelChoice, model_id
from index_tts.service.synthesizer import EngineFactory
from index_tts.storage import DataDir, default_data_dir

log = logging.getLogger(__name__)

__all__ = ["EngineUnavailable", "MODEL_FLAGS", "choose_engine", "choose_models", "prepare_gradio_temp"]

MODEL_FLAGS = ("2", "2.5", "both")  # --model: IndexTTS2, IndexTTS-2.5, or both (2 the default, 2.5 on demand)


def prepare_gradio_temp(data_dir: str | None) -> Path:
    """Gradio's upload cache inside the data folder, emptied: its files belong to no page of this
    run. The launcher points GRADIO_TEMP_DIR here before gradio is imported."""
    return DataDir(Path(data_dir) if data_dir else default_data_dir()).clear_gradio_temp().resolve()


def choose_engine(engine: str, model_dir: str | None, cache_hub: str | None, revision: str | None,
                  fault_injection: bool = False) -> tuple[EngineFactory, str, dict]:
    """(engine factory, why it was chosen, the model store doctor's findings as a dict).
    Raises EngineUnavailable when `engine` names one that cannot run here."""
    files = open_model_files(model_dir, cache_hub, revision)
    store = _inspect(files, warn_missing=engine != "quick")
    factory, reason = select_engine(engine, files)
    log.info("engine: %s", reason)
    return _faulty(factory) if fault_injection else factory, reason, store


def choose_models(models: str, engine: str, model_dir: str | None, cache_hub: str | None, revision: str | None,
                  model_dir_25: str | None = None, fault_injection: bool = False) -> tuple[str, ModelChoice, dict[str, ModelChoice]]:
    """(the default model id, its choice, the other served models' choices) for `--model`.

    IndexTTS2 follows `--engine` (the quick voice stands in for it when its weights are missing);
    IndexTTS-2.5 needs its own weights (`--model-dir-25`, or the store): without them it is served
    as unavailable, and asking for it says how to fetch them. Raises EngineUnavailable as
    choose_engine does."""
    if models not in MODEL_FLAGS:
        raise ValueError(f"model must be one of {', '.join(MODEL_FLAGS)}, got {models!r}")
    choices = {}
    if models in ("2", "both"):
        choices["2"] = ModelChoice(*choose_engine(engine, model_dir, cache_hub, revision, fault_injection))
    if models in ("2.5", "both"):
        files = open_model_files(model_dir_25, cache_hub, None, model="2.5")
        store = _inspect(files, warn_missing=True)
        factory, reason = select_engine_25(files)
        log.info("IndexTTS-2.5: %s", reason)
        choices["2.5"] = ModelChoice(_faulty(factory) if fault_injection and factory else factory, reason, store)
    default = "2" if "2" in choices else "2.5"
    return model_id(default), choices.pop(default), {model_id(k): v for k, v in choices.items()}


def _inspect(files: ModelFiles, warn_missing: bool) -> dict:
    """The model store doctor's findings as a dict, their warnings logged."""
    log.info("model: %s", files.describe())
    try:
        store = inspect(files).as_dict()  # no throughput test here: `python -m index_tts doctor` measures it
    except Exception:  # a report is a courtesy; it must never keep the studio from starting
        log.exception("could not inspect the model store")
        store = {}
    for warning in store.get("warnings", []):
        log.warning("model store: %s", warning)
    if warn_missing and store.get("fix"):
        log.warning("model store: %s", store["fix"])
    return store


def _faulty(factory: EngineFactory) -> EngineFactory:
    from index_tts.engines.faults import with_fault_injection

    log.warning("--fault-injection: text markers make the engine fail on purpose (a testing aid)")
    return with_fault_injection(factory)
