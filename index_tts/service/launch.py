"""Choosing the engine at launch: inspect the model store, pick the engine `--engine` asks for
(or the best one available), and say why. The launcher (webui.py) calls this, then
init_synthesizer()."""

from __future__ import annotations

import logging
from pathlib import Path

from index_tts.engines import EngineUnavailable, select_engine
from index_tts.model_store.doctor import inspect
from index_tts.model_store.layout import open_model_files
from index_tts.service.synthesizer import EngineFactory
from index_tts.storage import DataDir, default_data_dir

log = logging.getLogger(__name__)

__all__ = ["EngineUnavailable", "choose_engine", "prepare_gradio_temp"]


def prepare_gradio_temp(data_dir: str | None) -> Path:
    """Gradio's upload cache inside the data folder, emptied: its files belong to no page of this
    run. The launcher points GRADIO_TEMP_DIR here before gradio is imported."""
    return DataDir(Path(data_dir) if data_dir else default_data_dir()).clear_gradio_temp().resolve()


def choose_engine(engine: str, model_dir: str | None, cache_hub: str | None, revision: str | None,
                  fault_injection: bool = False) -> tuple[EngineFactory, str, dict]:
    """(engine factory, why it was chosen, the model store doctor's findings as a dict).
    Raises EngineUnavailable when `engine` names one that cannot run here."""
    files = open_model_files(model_dir, cache_hub, revision)
    log.info("model: %s", files.describe())
    try:
        store = inspect(files).as_dict()  # no throughput test here: `python -m index_tts doctor` measures it
    except Exception:  # a report is a courtesy; it must never keep the studio from starting
        log.exception("could not inspect the model store")
        store = {}
    for warning in store.get("warnings", []):
        log.warning("model store: %s", warning)
    if engine != "quick" and store.get("fix"):
        log.warning("model store: %s", store["fix"])
    factory, reason = select_engine(engine, files)
    log.info("engine: %s", reason)
    if fault_injection:
        from index_tts.engines.faults import with_fault_injection

        log.warning("--fault-injection: text markers make the engine fail on purpose (a testing aid)")
        factory = with_fault_injection(factory)
    return factory, reason, store
