"""The synthesizer service: one per process, between the front ends (UI, HTTP) and an engine.

It owns everything stateful: the engine (loaded in a background thread so the page is up in
seconds), the lock that serializes synthesis, admission (a bounded queue, the request timeout,
cancellation) for every job, and the data folder's stores. It knows nothing of Gradio or
FastAPI; they turn its exceptions (errors.py) into their own errors.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from index_tts.emotion import EmotionSpec
from index_tts.encoding import audio_format
from index_tts.engines.base import Engine, GenerationParams, ProgressFn, no_progress
from index_tts.service.audition import Take, audition
from index_tts.service.checks import Limits, check_number
from index_tts.service.dialogue import (DialogueResult, RoleSetting, compose, compose_from_history, regenerate_line,
                                        remove_unused_clip_folders)
from index_tts.service.dubbing import Dubbing
from index_tts.service.errors import Busy, Cancelled, State, TimedOut, ValidationError
from index_tts.service.library import Library
from index_tts.service.models import (DEFAULT_MODEL, MODEL_LABELS, MODELS, TAKES_LANGUAGE, EngineFactory, ModelChoice,
                                      ModelSlot, check_model)
from index_tts.service.outputs import Outputs
from index_tts.service.projects import Projects
from index_tts.service.render import OUTPUT_SAMPLE_RATE, Rendering, checking, title_of
from index_tts.service.requests import Rendered, SynthesisRequest, SynthesisResult
from index_tts.engines.timing import DURATION_FACTOR_RANGE
from index_tts.storage import (DataDir, EmotionPresetStore, GlossaryStore, HistoryStore, PresetStore, Retention,
                               VoiceStore, default_data_dir)
from index_tts.storage.history import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_GB
from index_tts.timestretch import MAX_SPEED, MIN_SPEED, time_stretch

log = logging.getLogger(__name__)

WEIGHTS_HELP = "To use IndexTTS2, fetch its weights with `python -m index_tts download` (or ./start_app.sh restart) and restart; docs/models.md explains the model store."
# When the neural engine fails to load, a damaged weight file is the likely cause.
LOAD_FAILED_HELP = ("Check the weights with `python -m index_tts doctor --verify`; "
                    "`python -m index_tts download --verify` fetches damaged files again.")
QUICK_ENGINE_MODULE = "index_tts.engines.quick"


@dataclass(frozen=True)
class Status:
    state: State
    progress: float            # 0..1 while loading; 1 when ready
    message: str               # what is happening, in words
    engine: str                # engine name ("" until known)
    device: str
    version: str
    is_quick_voice: bool
    selection_reason: str      # why this engine was chosen
    error: str = ""            # the load error, when failed
    help: str = ""             # how to get IndexTTS2 (quick voice), or how to check its weights (failed load)
    model_store: dict = field(default_factory=dict)  # doctor's findings at start-up (model_store.doctor.Report.as_dict)
    model: str = DEFAULT_MODEL  # the model this status is about (the launch default unless asked)
    models: tuple = ()          # every served model: ModelInfo.as_dict() each

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def weights_revision(self) -> str:
        """The active IndexTeam/IndexTTS-2 revision ('' for a flat model folder or when unknown)."""
        return str(self.model_store.get("revision") or "")


@dataclass(frozen=True)
class ModelInfo:
    """A served model as the front ends list it (the model switch, /v1/models, /readyz)."""

    id: str                  # "indextts-2", "indextts-2.5"
    label: str               # "IndexTTS2", "IndexTTS-2.5"
    default: bool
    takes_language: bool     # whether the request's language reaches the engine
    state: State | str       # "ready", "loading", "failed", or "not loaded" (lazy, not asked for yet)
    available: bool          # False when its weights are missing (`reason` says how to get them)
    engine: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Synthesizer(Library, Outputs, Rendering, Projects, Dubbing):
    """The service. Loading, status, admission and synthesis live here; the library, the outputs
    and history, rendering, long-form projects and dubbing jobs are its mixins (library.py,
    outputs.py, render.py, projects.py, dubbing.py)."""

    def __init__(
        self,
        factory: EngineFactory,
        *,
        data_dir: str | os.PathLike | None = None,
        selection_reason: str = "",
        limits: Limits = Limits(),
        load_delay_s: float = 0.0,
        model_store: dict | None = None,
        history_max_entries: int | None = None,
        history_max_gb: float | None = None,
        model: str = DEFAULT_MODEL,
        others: dict[str, ModelChoice] | None = None,
    ):
        """factory: the engine of `model`, the launch default, loaded by start(). others: the other
        served models (`--model both`), each loaded on its first request."""
        self._factory = factory
        self.default_model = check_model(model)
        self._slots = {self.default_model: ModelSlot(self.default_model, ModelChoice(factory, selection_reason, dict(model_store or {})),
                                                     load_delay_s)}
        for other, choice in (others or {}).items():
            self._slots[check_model(other)] = ModelSlot(other, choice)
        self.data = DataDir(Path(data_dir) if data_dir is not None else default_data_dir()).ensure()
        self.data.remove_crash_leftovers()  # a previous process may have been killed mid-write
        self.presets = PresetStore(self.data.presets)
        self.glossary = GlossaryStore(self.data.glossary)
        self.voices = VoiceStore(self.data.voices)
        retention = None  # unset: $INDEX_TTS_HISTORY_MAX_ENTRIES / _GB or the defaults
        if history_max_entries is not None or history_max_gb is not None:
            retention = Retention.from_gb(history_max_entries or DEFAULT_MAX_ENTRIES,
                                          history_max_gb if history_max_gb is not None else DEFAULT_MAX_GB)
        self.history = HistoryStore(self.data.history, self.data.outputs, retention)
        self.emotion_presets = EmotionPresetStore(self.data.emotion_presets)
        remove_unused_clip_folders(self)   # dialogues whose every history entry is gone
        self.limits = limits

        # Admission: jobs (requests, dialogues) running or waiting, bounded by limits.max_queue.
        self._admission_lock = threading.Lock()
        self._in_flight = 0
        self._typical_s = 5.0  # running mean of request durations, for Retry-After estimates

    # -- loading ------------------------------------------------------------------------------

    def start(self) -> "Synthesizer":
        """Load the default model's engine in a background thread; returns at once. Idempotent."""
        self._slots[self.default_model].start()
        self.clear_uploads()
        return self

    def wait_until_loaded(self, timeout: float | None = None, model: str | None = None) -> State:
        """Block until loading ends (ready or failed) or `timeout` passes; return the state."""
        self._slot(model).ready.wait(timeout)
        return self.status(model).state

    def _slot(self, model: str | None) -> ModelSlot:
        """The served model `model` names (None: the default); ValidationError("model") otherwise."""
        model = check_model(model) or self.default_model
        slot = self._slots.get(model)
        if slot is None:
            raise ValidationError("model", f"{model} is not served here; start the studio with --model {MODELS[model]} "
                                           f"or --model both")
        return slot

    # -- status -------------------------------------------------------------------------------

    def _is_quick(self, engine: Engine | None, factory=None) -> bool:
        if engine is not None:
            return getattr(engine, "is_quick_voice", type(engine).__module__ == QUICK_ENGINE_MODULE)
        return getattr(factory, "__module__", None) == QUICK_ENGINE_MODULE

    def models(self) -> list[ModelInfo]:
        """The served models, the default first."""
        infos = []
        for model, slot in sorted(self._slots.items(), key=lambda kv: kv[0] != self.default_model):
            state, _, _, error, engine = slot.snapshot()
            infos.append(ModelInfo(model, MODEL_LABELS[model], model == self.default_model, model in TAKES_LANGUAGE,
                                   state if slot.started else "not loaded", slot.choice.factory is not None,
                                   getattr(engine, "name", "") if engine else "", error or slot.choice.reason))
        return infos

    def status(self, model: str | None = None) -> Status:
        """The loading state of `model` (None: the launch default), with every served model listed."""
        slot = self._slot(model)
        state, progress, message, error, engine = slot.snapshot()
        quick = self._is_quick(engine, slot.choice.factory)
        store = slot.choice.model_store
        return Status(
            state=state,
            progress=progress,
            message=message,
            engine=getattr(engine, "name", "") if engine else "",
            device=getattr(engine, "device", "") if engine else "",
            version=getattr(engine, "version", "") if engine else "",
            is_quick_voice=quick,
            selection_reason=slot.choice.reason,
            error=error,
            help=self._help(slot, state, quick),
            model_store=dict(store),
            model=slot.model,
            models=tuple(m.as_dict() for m in self.models()),
        )

    @staticmethod
    def _help(slot: ModelSlot, state: State, quick: bool) -> str:
        """How to get the model (the quick voice stands in, or its weights are missing), or how to
        check its weights (a failed load)."""
        fix = slot.choice.model_store.get("fix")
        if quick:
            return fix or WEIGHTS_HELP
        if slot.choice.factory is None:
            return fix or slot.choice.reason
        return LOAD_FAILED_HELP if state == "failed" else ""

    def _ready_engine(self, model: str | None = None) -> Engine:
        return self._slot(model).ready_engine()

    def _engine_for(self, model: str | None, check: Callable[[], None], progress: ProgressFn) -> Engine:
        """The engine for a request: a served model loaded on demand (`--model both`) is loaded
        now and waited for; the launch default answers NotReady while it loads."""
        slot = self._slot(model)
        if slot.model != self.default_model and slot.choice.factory is not None:
            return slot.wait_for_engine(check, progress)
        return slot.ready_engine()

    @contextmanager
    def _admitted(self):
        """Hold one of the 1 + max_queue places (per request the default engine runs at once) for
        the duration of a request, or raise Busy."""
        with self._admission_lock:
            parallel = self._slots[self.default_model].parallel
            if self._in_flight >= parallel * (1 + self.limits.max_queue):
                wait = max(1, math.ceil(self._typical_s * self._in_flight / parallel))
                raise Busy(wait, f"the server is busy ({self._in_flight} requests in progress or waiting); "
                                 f"try again in about {wait} s")
            self._in_flight += 1
        started = time.monotonic()
        try:
            yield
        finally:
            with self._admission_lock:
                self._in_flight -= 1
                self._typical_s = 0.8 * self._typical_s + 0.2 * (time.monotonic() - started)

    @contextmanager
    def job(self, cancel: threading.Event | None = None, timeout_s: float | None = None) -> Iterator[Callable[[], None]]:
        """Admission, timeout and cancellation for one request or batch job (a dialogue): holds a
        queue place for the duration (or raises Busy) and yields check(), which raises Cancelled
        once `cancel` is set and TimedOut after `timeout_s` (default `Limits.request_timeout_s`;
        long work whose results are kept as it goes, like a project, passes math.inf). The work
        calls it whenever it can stop (every progress report, before writing a file)."""
        started = time.monotonic()
        timeout = self.limits.request_timeout_s if timeout_s is None else timeout_s

        def check() -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled("the request was cancelled")
            if time.monotonic() - started > timeout:
                raise TimedOut(f"the request took longer than {timeout:g} s")

        with self._admitted():
            yield check

    def queue_length(self) -> int:
        """Jobs now admitted (synthesis requests and dialogues), the running one included."""
        with self._admission_lock:
            return self._in_flight

    def synthesize(self, request: SynthesisRequest, progress: ProgressFn = no_progress,
                   on_audio: Callable[[np.ndarray], None] | None = None,
                   cancel: threading.Event | None = None) -> SynthesisResult:
        """Validate, synthesize (one request at a time), write the output file, its subtitles and
        its history record.

        progress(fraction, stage) reports stages. on_audio(int16 samples at OUTPUT_SAMPLE_RATE), when
        given, receives the audio as each segment finishes, the pause before it included, so the
        chunks in order are exactly the samples of the written file (for streaming).
        cancel: set it (from any thread) to stop the request; it is checked whenever the engine
        reports progress, and cancelled or timed-out work writes no file.
        Raises ValidationError, NotReady, Busy (queue full), Cancelled, TimedOut.
        """
        started = time.monotonic()
        speed = float(check_number(request.speed, "speed", MIN_SPEED, MAX_SPEED))
        asked = request
        if speed != 1.0 and request.duration is None and hasattr(self._ready_engine(), "plan"):
            # An engine with duration control renders the speed itself, at a natural pitch, when
            # the factor is in its range; the time stretch below covers the rest.
            factor = float(check_number(request.generation.duration_factor, "generation.duration_factor",
                                        *DURATION_FACTOR_RANGE)) / speed
            if DURATION_FACTOR_RANGE[0] <= factor <= DURATION_FACTOR_RANGE[1]:
                request = replace(request, speed=1.0, generation=replace(request.generation, duration_factor=factor))
                speed = 1.0
        sent: list[np.ndarray] = []  # what on_audio received; the file is exactly this when streaming

        with self.job(cancel) as check:
            def stretched_audio(chunk: np.ndarray) -> None:
                check()
                chunk = time_stretch(chunk, OUTPUT_SAMPLE_RATE, speed)
                sent.append(chunk)
                on_audio(chunk)

            rendered, base = self.render(request, checking(progress, check),
                                         stretched_audio if on_audio is not None else None, check)
            base = replace(base, generation=asked.generation)  # the record keeps what was asked
            fmt = audio_format(request.output_format)
            if speed != 1.0:
                audio = np.concatenate(sent) if sent else time_stretch(rendered.audio, OUTPUT_SAMPLE_RATE, speed)
                scale = len(audio) / max(len(rendered.audio), 1)
                rendered = Rendered(audio, [replace(s, start_s=s.start_s * scale, end_s=s.end_s * scale) for s in rendered.timeline],
                                    rendered.emotion_model)
            check()  # the last chance to stop before a file appears
            progress(0.95, "saving audio")
            path, srt, entry_id = self.write_output(rendered, fmt.name, {
                "kind": "speech",
                "title": title_of(base.text),
                "request": self._request_record(asked, base),
            })
        progress(1.0, "done")
        return SynthesisResult(
            path=path,
            sample_rate=OUTPUT_SAMPLE_RATE,
            duration_s=len(rendered.audio) / OUTPUT_SAMPLE_RATE,
            segments=[(s.text, s.start_s, s.end_s) for s in rendered.timeline],
            engine=rendered.engine,
            elapsed_s=time.monotonic() - started,
            emotion_model=rendered.emotion_model,
            format=fmt.name,
            timeline=rendered.timeline,
            srt_path=srt,
            history_id=entry_id,
        )


    def compose_dialogue(self, script: str, roles: dict[str, RoleSetting], *, pause_ms: int = 400,
                         output_format: str = "wav", generation: GenerationParams = GenerationParams(),
                         progress: ProgressFn = no_progress, cancel: threading.Event | None = None) -> DialogueResult:
        """Voice a `Role: line` script (dialogue.py) as one admitted job: it counts in the queue,
        and `cancel` or the request timeout stop it with nothing written. generation.seed, when
        set, is every line's seed; otherwise each line gets a fresh one."""
        return compose(self, script, roles, pause_ms=pause_ms, output_format=output_format, generation=generation,
                       progress=progress, cancel=cancel)

    def regenerate_line(self, entry_id: str, line: int, *, seed: int | None = None, emotion: EmotionSpec | None = None,
                        progress: ProgressFn = no_progress, cancel: threading.Event | None = None) -> DialogueResult:
        """Voice one line of a dialogue history entry again with a new seed (None: a fresh one)
        and/or emotion (None: the line's own), the other lines mixed from their kept clips
        unchanged; the result is a new history entry (dialogue.py). One admitted job."""
        return regenerate_line(self, entry_id, line, seed=seed, emotion=emotion, progress=progress, cancel=cancel)

    def audition(self, text: str, voice: str | os.PathLike, emotions: list[tuple[str, EmotionSpec]] | None = None, *,
                 generation: GenerationParams = GenerationParams(), progress: ProgressFn = no_progress,
                 cancel: threading.Event | None = None) -> Iterator[Take]:
        """`text` in each of `emotions` ((label, spec) pairs; the eight pure built-in presets when
        None), one Take at a time as each is written (audition.py). Bad input raises here; the
        generator holds one queue place while it runs and raises Cancelled once `cancel` is set."""
        return audition(self, text, voice, emotions, generation=generation, progress=progress, cancel=cancel)

    def regenerate(self, entry_id: str, progress: ProgressFn = no_progress,
                   cancel: threading.Event | None = None) -> SynthesisResult | DialogueResult:
        """Make a history entry again with its saved settings: a SynthesisResult for speech, a
        DialogueResult for a dialogue. NotFound / ValidationError("history")."""
        if self.get_history(entry_id).get("kind") == "dialogue":
            return compose_from_history(self, entry_id, progress, cancel=cancel)
        return self.synthesize(self.request_from_history(entry_id), progress, cancel=cancel)


# ---------------------------------------------------------------------------------------------
# the process-wide instance

_instance: Synthesizer | None = None
_instance_lock = threading.Lock()


def init_synthesizer(factory: EngineFactory, **kwargs) -> Synthesizer:
    """Create the process's Synthesizer and start loading its engine. Call once, at launch."""
    global _instance
    with _instance_lock:
        if _instance is not None:
            raise RuntimeError("the synthesizer is already initialized; there is one per process")
        _instance = Synthesizer(factory, **kwargs).start()
        return _instance


def get_synthesizer() -> Synthesizer:
    if _instance is None:
        raise RuntimeError("init_synthesizer() has not been called")
    return _instance

