"""The models a studio serves and the loading state of each.

A request names its model ("indextts-2" or "indextts-2.5"; None: the launch default). The studio is
launched with one or both (`--model 2|2.5|both`); each served model has a ModelSlot: its engine
factory, why it was chosen, the model store's findings, and the loading state. The launch default
loads at start; the other (with `both`) loads on its first request. A model whose weights are
missing has no factory: asking for it is a ValidationError("model") saying how to get it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from index_tts.engines.base import Engine, ProgressFn
from index_tts.service.errors import NotReady, State, ValidationError

log = logging.getLogger(__name__)

EngineFactory = Callable[[ProgressFn], Engine]

# Request model id -> the model store's name for it (download --model, make_model_dir).
MODELS = {"indextts-2": "2", "indextts-2.5": "2.5"}
MODEL_IDS = tuple(MODELS)
DEFAULT_MODEL = "indextts-2"
MODEL_LABELS = {"indextts-2": "IndexTTS2", "indextts-2.5": "IndexTTS-2.5"}
# IndexTTS-2.5's text languages ("zh-en": mixed Chinese and English); IndexTTS2 reads zh and en
# by itself and ignores the choice.
TEXT_LANGUAGES = ("auto", "zh", "en", "ja", "es", "ar", "zh-en")
ENGINE_LANGUAGE = {"zh-en": "zhen"}  # the 2.5 engine's own code for it
TAKES_LANGUAGE = ("indextts-2.5",)


def model_id(name: str) -> str:
    """"2" / "2.5" (the launch flag's words) -> the request model id."""
    return next(m for m, store_name in MODELS.items() if store_name == name)


def check_model(value: object) -> str | None:
    """A request's `model`: None (the default) or a known model id; ValidationError("model")."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in MODELS:
        raise ValidationError("model", f"must be one of {', '.join(MODEL_IDS)}, got {str(value)[:80]!r}")
    return value


def check_language(value: object) -> str:
    """A request's `language` as the engine takes it (auto, zh, en, ja, es, ar, zhen)."""
    if not isinstance(value, str) or value.lower() not in (*TEXT_LANGUAGES, "zhen"):
        raise ValidationError("language", f"must be one of {', '.join(TEXT_LANGUAGES)}, got {str(value)[:80]!r}")
    return ENGINE_LANGUAGE.get(value.lower(), value.lower())


@dataclass(frozen=True)
class ModelChoice:
    """What the launcher found for one model: a factory, or None and `reason` says why not (and
    how to fix it). model_store: the doctor's findings for this model's files."""

    factory: EngineFactory | None
    reason: str
    model_store: dict = field(default_factory=dict)


class ModelSlot:
    """One served model: its engine, loaded once in a background thread, and the loading state."""

    def __init__(self, model: str, choice: ModelChoice, load_delay_s: float = 0.0):
        self.model, self.choice, self.load_delay_s = model, choice, max(0.0, float(load_delay_s))
        self._lock = threading.Lock()   # guards the fields below
        self.state: State = "loading"
        self.progress, self.message, self.error = 0.0, "not loaded yet", ""
        self.engine: Engine | None = None
        # Requests the engine renders at once: one (engines and their per-voice caches are not
        # thread-safe), or `parallel` for an engine served by replicas (index_tts/scale/serving.py).
        # Set when it loads, before any request can render.
        self.parallel = 1
        self.runs = threading.BoundedSemaphore(1)
        self.ready = threading.Event()  # set when loading ends, either way
        self._loader: threading.Thread | None = None
        if choice.factory is None:
            self.state, self.error, self.message = "failed", choice.reason, f"{MODEL_LABELS[model]} is not available"
            self.ready.set()

    @property
    def started(self) -> bool:
        return self._loader is not None or self.choice.factory is None

    def start(self) -> None:
        """Load the engine in a background thread; returns at once. Idempotent."""
        with self._lock:
            if self.started:
                return
            self.message = "starting"
            self._loader = threading.Thread(target=self._load, name=f"engine-loader-{self.model}", daemon=True)
        self._loader.start()

    def snapshot(self) -> tuple[State, float, str, str, Engine | None]:
        with self._lock:
            return self.state, self.progress, self.message, self.error, self.engine

    def _set_progress(self, fraction: float, message: str) -> None:
        with self._lock:
            if self.state == "loading":
                self.progress = min(max(float(fraction), self.progress), 1.0)  # never goes back
                self.message = message

    def _load(self) -> None:
        started = time.monotonic()
        try:
            share = 0.0
            if self.load_delay_s > 0:
                # Demo/testing aid (--load-delay): stay visibly in "loading" for a while.
                share = 0.5
                end = started + self.load_delay_s
                while (left := end - time.monotonic()) > 0:
                    self._set_progress(share * (1 - left / self.load_delay_s),
                                       f"held in loading state by --load-delay ({left:.0f} s left)")
                    time.sleep(min(0.2, left))
            engine = self.choice.factory(lambda f, stage: self._set_progress(share + (1 - share) * f, stage))
        except BaseException as e:  # a failed load must show up in the UI, not kill a thread silently
            log.exception("engine for %s failed to load", self.model)
            with self._lock:
                self.state, self.error, self.message = "failed", f"{type(e).__name__}: {e}", "engine failed to load"
            self.ready.set()
            return
        parallel = max(1, int(getattr(engine, "parallel", 1)))
        with self._lock:
            self.parallel, self.runs = parallel, threading.BoundedSemaphore(parallel)
            self.engine = engine
            self.state, self.progress, self.message = "ready", 1.0, "ready"
        log.info("engine %s (%s) ready on %s after %.1f s", getattr(engine, "name", "?"), self.model,
                 getattr(engine, "device", "?"), time.monotonic() - started)
        self.ready.set()

    def ready_engine(self) -> Engine:
        """The engine, or NotReady (loading, failed) / ValidationError("model") (no weights)."""
        state, progress, _, error, engine = self.snapshot()
        if state == "ready" and engine is not None:
            return engine
        if self.choice.factory is None:
            raise ValidationError("model", f"{self.model} is not available here: {error}")
        if state == "failed":
            raise NotReady(state, progress, f"the model failed to load: {error}")
        raise NotReady(state, progress, f"model is loading ({progress * 100:.0f}%)")

    def wait_for_engine(self, check: Callable[[], None], progress: ProgressFn) -> Engine:
        """Start the load if it has not started and wait for it, calling check() (cancel, timeout)
        and reporting the load's progress: a lazily loaded model's first request waits."""
        self.start()
        while not self.ready.wait(0.1):
            check()
            _, fraction, message, _, _ = self.snapshot()
            progress(0.02 * fraction, f"loading {MODEL_LABELS[self.model]} (first use): {message}")
        return self.ready_engine()
