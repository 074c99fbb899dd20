"""Engine selection: which engine the studio runs, and why.

An engine factory is `factory(progress) -> Engine`; the service calls it in a background thread.
Engine modules are imported lazily here, so importing this package loads no model code.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Callable, Literal

from index_tts.engines.base import Engine, ProgressFn
from index_tts.model_store.layout import ModelFiles, as_model_files

EngineKind = Literal["auto", "quick", "indextts2"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("auto", "quick", "indextts2")
EngineFactory = Callable[[ProgressFn], Engine]

WEIGHTS_HELP = "fetch them with `python -m index_tts download` (see docs/models.md)"


class EngineUnavailable(RuntimeError):
    """The requested engine cannot run here (code or weights missing)."""


def _indextts2_module():
    """The IndexTTS2 engine module, or None with the reason it cannot be imported."""
    try:
        return importlib.import_module("index_tts.engines.indextts2"), ""
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("index_tts"):
            raise  # our own code is broken: a bug to see, not a reason to fall back quietly
        return None, f"the IndexTTS2 engine needs a missing package ({e.name})"


def indextts2_unavailable_reason(model: ModelFiles | str | Path, version: str = "2") -> str:
    """'' when IndexTTS2 (version "2") or IndexTTS-2.5 ("2.5") can load from `model` (ModelFiles or
    a flat folder), otherwise why not."""
    from index_tts.model_store.model_files import missing_files

    files = as_model_files(model)
    missing = missing_files(files, version)
    if missing:
        named = [files.origin(n) if files.kind == "hub" else n for n in missing]
        shown = ", ".join(named[:5]) + (f", ... ({len(named)} in all)" if len(named) > 5 else "")
        return f"{'IndexTTS2' if version == '2' else 'IndexTTS-2.5'} weights missing in {files.describe()}: {shown}"
    # Only now import the neural engine (torch, transformers): a missing package is a reason too.
    module, reason = _indextts2_module()
    return reason


def _quick_factory() -> EngineFactory:
    from index_tts.engines.quick import QuickVoiceEngine

    return QuickVoiceEngine.load


def select_engine(kind: str, model: ModelFiles | str | Path) -> tuple[EngineFactory, str]:
    """Pick the engine factory for `kind` and say why in one sentence.

    "auto" runs IndexTTS2 when every weight file is present and the quick voice otherwise.
    "indextts2" insists: it raises EngineUnavailable with the reason when it cannot run.
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_KINDS)}, got {kind!r}")
    if kind in ("auto", "indextts2"):
        files = as_model_files(model)
        reason = indextts2_unavailable_reason(files)
        if not reason:
            module, _ = _indextts2_module()
            factory = functools.partial(module.IndexTTS2Engine.load, files)
            return factory, f"IndexTTS2 weights found in {files.describe()}"
        if kind == "indextts2":
            raise EngineUnavailable(f"{reason}; {WEIGHTS_HELP}")
        return _quick_factory(), f"quick voice: {reason}; {WEIGHTS_HELP}"
    return _quick_factory(), "quick voice (chosen with --engine quick)"


def select_engine_25(model: ModelFiles | str | Path) -> tuple[EngineFactory | None, str]:
    """IndexTTS-2.5's factory and why, or None and why not with the command that fetches its
    weights. The quick voice never stands in for 2.5: it speaks neither its languages nor its voice."""
    files = as_model_files(model)
    reason = indextts2_unavailable_reason(files, "2.5")
    if reason:
        return None, f"{reason}; fetch them with `python -m index_tts download --model 2.5` (see docs/indextts25.md)"
    module = importlib.import_module("index_tts.engines.indextts25")
    return functools.partial(module.IndexTTS25Engine.load, files), f"IndexTTS-2.5 weights found in {files.describe()}"
