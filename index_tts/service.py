"""The synthesizer service: one per process, between the front ends (UI, HTTP) and an engine.

It owns everything stateful: the engine (loaded in a background thread so the page is up in
seconds), the lock that serializes synthesis, request validation, and writing outputs. It knows
nothing of Gradio or FastAPI; they turn its exceptions into their own errors:

    ValidationError (a ValueError) - the request is bad; `.field` names the culprit.
    NotReady                       - the engine is still loading (or failed to); carries progress.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Union

import numpy as np
import soundfile as sf
import soxr

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import Engine, EngineRequest, GenerationParams, NothingToSpeak, ProgressFn, Segment, no_progress
from index_tts.storage import DataDir, GlossaryStore, PresetStore, atomic_write_bytes, default_data_dir

log = logging.getLogger(__name__)

OUTPUT_SAMPLE_RATE = 22050
OUTPUT_FORMATS = ("wav",)
WEIGHTS_HELP = "To use IndexTTS2, fetch its weights with `python -m index_tts download` (or ./start_app.sh restart) and restart; docs/models.md explains the model store."
# When the neural engine fails to load, a damaged weight file is the likely cause.
LOAD_FAILED_HELP = ("Check the weights with `python -m index_tts doctor --verify`; "
                    "`python -m index_tts download --verify` fetches damaged files again.")
QUICK_ENGINE_MODULE = "index_tts.engines.quick"

# A voice: a file path, or (sample_rate, samples) as Gradio's numpy audio gives it.
AudioInput = Union[str, os.PathLike, tuple]
EngineFactory = Callable[[ProgressFn], Engine]
State = Literal["loading", "ready", "failed"]


class ValidationError(ValueError):
    """A request field is invalid. `field` is its dotted name, e.g. "voice" or "generation.top_p"."""

    def __init__(self, field: str, message: str):
        super().__init__(message if message.startswith(field) else f"{field}: {message}")
        self.field = field


class NotReady(RuntimeError):
    """The engine cannot take requests yet (loading) or at all (failed)."""

    def __init__(self, state: State, progress: float, message: str):
        super().__init__(message)
        self.state = state
        self.progress = progress


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 5000
    max_emotion_text_chars: int = 1000
    max_voice_seconds: float = 60.0   # uploads; the engine itself keeps only the first 15 s
    min_voice_seconds: float = 0.3
    silence_peak: float = 1e-3        # about -60 dBFS: below this the voice carries nothing


# ---------------------------------------------------------------------------------------------
# audio decoding (uploads)


def _to_float_mono(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim == 2:
        # Gradio gives [N, C]; a [C, N] array with few rows is a transposed multichannel clip.
        if samples.shape[0] <= 8 and samples.shape[1] > samples.shape[0]:
            samples = samples.T
    elif samples.ndim != 1:
        raise ValueError(f"audio must be 1-D or 2-D, got shape {samples.shape}")
    if samples.dtype.kind == "i":
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    elif samples.dtype.kind == "u":
        half = float(np.iinfo(samples.dtype).max + 1) / 2
        samples = (samples.astype(np.float32) - half) / half
    elif samples.dtype.kind == "f":
        samples = samples.astype(np.float32)
    else:
        raise ValueError(f"audio samples must be numbers, got dtype {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return np.ascontiguousarray(samples, dtype=np.float32)


def decode_audio(source: object, field_name: str, limits: Limits, sample_rate: int = 0) -> tuple[np.ndarray, int]:
    """Decode an uploaded clip to float32 mono in [-1, 1]; raise ValidationError(field_name)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ValidationError(field_name, f"file not found: {path.name}")
            try:
                data, sr = sf.read(str(path), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError) as e:
                raise ValidationError(field_name, f"cannot read {path.name} as audio ({e})") from e
            samples = _to_float_mono(data)
        elif isinstance(source, tuple) and len(source) == 2:
            sr, data = source
            samples = _to_float_mono(data)
        elif isinstance(source, np.ndarray):
            sr, samples = sample_rate, _to_float_mono(source)
        else:
            raise ValidationError(field_name, f"expected a file path or (sample_rate, samples), got {type(source).__name__}")
    except ValueError as e:
        if isinstance(e, ValidationError):
            raise
        raise ValidationError(field_name, str(e)) from e

    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not 4000 <= int(sr) <= 384000:
        raise ValidationError(field_name, f"sample rate must be a whole number in [4000, 384000], got {sr!r}")
    sr = int(sr)
    if samples.size == 0:
        raise ValidationError(field_name, "audio is empty")
    if not np.isfinite(samples).all():
        raise ValidationError(field_name, "audio contains NaN or infinite samples")
    seconds = samples.size / sr
    if seconds < limits.min_voice_seconds:
        raise ValidationError(field_name, f"audio is too short ({seconds:.2f} s; at least {limits.min_voice_seconds} s)")
    if seconds > limits.max_voice_seconds:
        raise ValidationError(field_name, f"audio is too long ({seconds:.1f} s; at most {limits.max_voice_seconds:g} s)")
    peak = float(np.abs(samples).max())
    if peak < limits.silence_peak:
        raise ValidationError(field_name, "audio is silent")
    if peak > 1.0:
        samples = samples / peak  # float uploads may exceed full scale; keep the shape, not the level
    return samples, sr


def audio_key(samples: np.ndarray, sample_rate: int) -> str:
    """Content hash of decoded audio: the same voice gives the same key whatever the file name."""
    h = hashlib.sha256()
    h.update(str(sample_rate).encode())
    h.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# requests and results


@dataclass(frozen=True)
class SynthesisRequest:
    """One synthesis request, as any front end builds it. `validate()` is the only checker.

    voice:          the reference voice (path, or (sample_rate, samples)).
    emotion:        EmotionSpec. In "audio" mode its audio may instead come as `emotion_audio`
                    (path or (sample_rate, samples)); validate() decodes it into the spec.
    output_format:  only "wav" (22050 Hz, 16-bit PCM) for now.
    use_glossary:   apply the custom term pronunciations (the service's GlossaryStore).
    """

    text: str
    voice: AudioInput | None
    emotion: EmotionSpec = field(default_factory=EmotionSpec)
    generation: GenerationParams = field(default_factory=GenerationParams)
    emotion_audio: AudioInput | None = None
    output_format: str = "wav"
    use_glossary: bool = True

    def validate(self, limits: Limits = Limits(), glossary: dict[str, dict[str, str]] | None = None) -> EngineRequest:
        """Check every field; return the engine's view of the request or raise ValidationError.

        glossary: the current custom pronunciations; passed on only when `use_glossary` is set.
        """
        if not isinstance(self.text, str):
            raise ValidationError("text", f"must be text, got {type(self.text).__name__}")
        text = self.text.strip()
        if not text:
            raise ValidationError("text", "is empty")
        if len(text) > limits.max_text_chars:
            raise ValidationError("text", f"is too long ({len(text)} characters; at most {limits.max_text_chars})")
        if not isinstance(self.use_glossary, bool):
            raise ValidationError("use_glossary", f"must be true or false, got {self.use_glossary!r}")
        if not isinstance(self.output_format, str) or self.output_format.lower() not in OUTPUT_FORMATS:
            raise ValidationError("output_format", f"must be one of {', '.join(OUTPUT_FORMATS)}, got {self.output_format!r}")

        if not isinstance(self.generation, GenerationParams):
            raise ValidationError("generation", f"must be GenerationParams, got {type(self.generation).__name__}")
        _rethrow_named(self.generation.validate, "generation")

        emotion = self.emotion
        if not isinstance(emotion, EmotionSpec):
            raise ValidationError("emotion", f"must be an EmotionSpec, got {type(emotion).__name__}")
        if isinstance(emotion.weight, bool):
            raise ValidationError("emotion.weight", f"must be a number in [0, 1], got {emotion.weight!r}")
        if not isinstance(emotion.use_random, bool):
            raise ValidationError("emotion.use_random", f"must be true or false, got {emotion.use_random!r}")
        if emotion.mode == "vector" and emotion.vector is not None:
            if isinstance(emotion.vector, (str, bytes)) or not hasattr(emotion.vector, "__len__"):
                raise ValidationError("emotion.vector", f"must be 8 numbers, got {emotion.vector!r}")
            if any(isinstance(v, bool) for v in emotion.vector):
                raise ValidationError("emotion.vector", "values must be numbers, not true/false")
            emotion = replace(emotion, vector=tuple(float(v) if isinstance(v, (int, float)) else v for v in emotion.vector))
        if emotion.mode == "audio":
            source = self.emotion_audio if self.emotion_audio is not None else emotion.audio
            if source is None:
                raise ValidationError("emotion.audio", "is required in 'audio' mode")
            emo_samples, emo_sr = decode_audio(source, "emotion.audio", limits, sample_rate=emotion.audio_sr)
            emotion = replace(emotion, audio=emo_samples, audio_sr=emo_sr)
        if emotion.mode == "text" and isinstance(emotion.text, str) and len(emotion.text) > limits.max_emotion_text_chars:
            raise ValidationError("emotion.text", f"is too long (at most {limits.max_emotion_text_chars} characters)")
        _rethrow_named(emotion.validate, "emotion")

        if self.voice is None:
            raise ValidationError("voice", "a reference voice is required")
        samples, sr = decode_audio(self.voice, "voice", limits)
        return EngineRequest(
            text=text,
            voice=samples,
            voice_sr=sr,
            voice_key=audio_key(samples, sr),
            emotion=emotion,
            generation=self.generation,
            glossary=dict(glossary or {}) if self.use_glossary else {},
        )


def _rethrow_named(check: Callable[[], None], default_field: str) -> None:
    """Run a dataclass's own validate(); re-raise its ValueError as a ValidationError whose field
    is the dotted name its message starts with ("generation.top_p must be ...")."""
    try:
        check()
    except ValidationError:
        raise
    except (ValueError, TypeError) as e:
        message = str(e)
        first = message.split(" ", 1)[0]
        name = first if first.startswith(default_field + ".") or first == default_field else default_field
        raise ValidationError(name, message) from e


@dataclass(frozen=True)
class SynthesisResult:
    path: Path
    sample_rate: int
    duration_s: float
    segments: list[tuple[str, float, float]]
    engine: str
    elapsed_s: float
    emotion_model: str = ""  # text mode: which model read the emotion text (engines may not say)


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

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def weights_revision(self) -> str:
        """The active IndexTeam/IndexTTS-2 revision ('' for a flat model folder or when unknown)."""
        return str(self.model_store.get("revision") or "")


# ---------------------------------------------------------------------------------------------
# the service


class Synthesizer:
    def __init__(
        self,
        factory: EngineFactory,
        *,
        data_dir: str | os.PathLike | None = None,
        selection_reason: str = "",
        limits: Limits = Limits(),
        load_delay_s: float = 0.0,
        model_store: dict | None = None,
    ):
        self._factory = factory
        self.model_store = dict(model_store or {})
        self.data = DataDir(Path(data_dir) if data_dir is not None else default_data_dir()).ensure()
        self.presets = PresetStore(self.data.presets)
        self.glossary = GlossaryStore(self.data.glossary)
        self.limits = limits
        self.selection_reason = selection_reason
        self.load_delay_s = max(0.0, float(load_delay_s))

        self._state_lock = threading.Lock()   # guards the fields below
        self._state: State = "loading"
        self._progress = 0.0
        self._message = "starting"
        self._error = ""
        self._engine: Engine | None = None
        self._ready = threading.Event()       # set when loading ends, either way
        self._loader: threading.Thread | None = None
        # One synthesis at a time: engines and their per-voice caches are not thread-safe.
        self._engine_lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------------

    def start(self) -> "Synthesizer":
        """Load the engine in a background thread; returns at once. Idempotent."""
        with self._state_lock:
            if self._loader is not None:
                return self
            self._loader = threading.Thread(target=self._load, name="engine-loader", daemon=True)
        self._loader.start()
        return self

    def _set_progress(self, fraction: float, message: str) -> None:
        with self._state_lock:
            if self._state == "loading":
                self._progress = min(max(float(fraction), self._progress), 1.0)  # never goes back
                self._message = message

    def _load(self) -> None:
        started = time.monotonic()
        try:
            share = 0.0
            if self.load_delay_s > 0:
                # Demo/testing aid (--load-delay): stay visibly in "loading" for a while.
                share = 0.5
                end = started + self.load_delay_s
                while (left := end - time.monotonic()) > 0:
                    self._set_progress(share * (1 - left / self.load_delay_s), f"held in loading state by --load-delay ({left:.0f} s left)")
                    time.sleep(min(0.2, left))
            engine = self._factory(lambda f, stage: self._set_progress(share + (1 - share) * f, stage))
        except BaseException as e:  # a failed load must show up in the UI, not kill a thread silently
            log.exception("engine failed to load")
            with self._state_lock:
                self._state, self._error, self._message = "failed", f"{type(e).__name__}: {e}", "engine failed to load"
            self._ready.set()
            return
        with self._state_lock:
            self._engine = engine
            self._state, self._progress, self._message = "ready", 1.0, "ready"
        log.info("engine %s ready on %s after %.1f s", getattr(engine, "name", "?"), getattr(engine, "device", "?"), time.monotonic() - started)
        self._ready.set()

    def wait_until_loaded(self, timeout: float | None = None) -> State:
        """Block until loading ends (ready or failed) or `timeout` passes; return the state."""
        self._ready.wait(timeout)
        return self.status().state

    # -- status -------------------------------------------------------------------------------

    def _is_quick(self, engine: Engine | None) -> bool:
        if engine is not None:
            return type(engine).__module__ == QUICK_ENGINE_MODULE
        return getattr(self._factory, "__module__", None) == QUICK_ENGINE_MODULE

    def status(self) -> Status:
        with self._state_lock:
            engine, state = self._engine, self._state
            progress, message, error = self._progress, self._message, self._error
        quick = self._is_quick(engine)
        return Status(
            state=state,
            progress=progress,
            message=message,
            engine=getattr(engine, "name", "") if engine else "",
            device=getattr(engine, "device", "") if engine else "",
            version=getattr(engine, "version", "") if engine else "",
            is_quick_voice=quick,
            selection_reason=self.selection_reason,
            error=error,
            help=(self.model_store.get("fix") or WEIGHTS_HELP) if quick else LOAD_FAILED_HELP if state == "failed" else "",
            model_store=dict(self.model_store),
        )

    def _ready_engine(self) -> Engine:
        with self._state_lock:
            state, progress, error, engine = self._state, self._progress, self._error, self._engine
        if state == "ready" and engine is not None:
            return engine
        if state == "failed":
            raise NotReady(state, progress, f"the model failed to load: {error}")
        raise NotReady(state, progress, f"model is loading ({progress * 100:.0f}%)")

    # -- work ---------------------------------------------------------------------------------

    def preview_segments(self, text: str, max_tokens: int) -> list[Segment]:
        """How the engine will split `text` (cheap; no synthesis)."""
        engine = self._ready_engine()
        if not isinstance(text, str) or not text.strip():
            return []
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, float)) or not math.isfinite(max_tokens):
            raise ValidationError("generation.max_text_tokens_per_segment", f"must be a number, got {max_tokens!r}")
        lo, hi = GenerationParams.RANGES["max_text_tokens_per_segment"]
        return engine.segments(text.strip()[: self.limits.max_text_chars], int(min(max(max_tokens, lo), hi)))

    def synthesize(self, request: SynthesisRequest, progress: ProgressFn = no_progress) -> SynthesisResult:
        """Validate, synthesize (one request at a time), write a WAV; report progress by stage."""
        engine = self._ready_engine()
        started = time.monotonic()
        progress(0.0, "checking the request")
        engine_request = request.validate(self.limits, self.glossary.load() if request.use_glossary is True else None)
        progress(0.02, "waiting for the engine")
        with self._engine_lock:
            try:
                output = engine.synthesize(engine_request, lambda f, stage: progress(0.03 + 0.9 * min(max(f, 0.0), 1.0), stage))
            except NothingToSpeak as e:
                raise ValidationError("text", "has nothing to speak (no words or characters)") from e
        progress(0.95, "saving audio")
        audio = _to_output_pcm(output.audio, output.sample_rate)
        path = self.data.new_output_path(".wav")
        buffer = io.BytesIO()
        sf.write(buffer, audio, OUTPUT_SAMPLE_RATE, format="WAV", subtype="PCM_16")
        atomic_write_bytes(path, buffer.getvalue())
        progress(1.0, "done")
        return SynthesisResult(
            path=path,
            sample_rate=OUTPUT_SAMPLE_RATE,
            duration_s=len(audio) / OUTPUT_SAMPLE_RATE,
            segments=list(output.segments),
            engine=engine.name,
            elapsed_s=time.monotonic() - started,
            emotion_model=output.emotion_model,
        )


def _to_output_pcm(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Engine audio (int16 or float, any rate) -> int16 mono at OUTPUT_SAMPLE_RATE."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        audio = audio.reshape(-1)
    samples = audio.astype(np.float32) / 32768.0 if audio.dtype.kind == "i" else audio.astype(np.float32)
    if sample_rate != OUTPUT_SAMPLE_RATE and samples.size:
        samples = soxr.resample(samples, sample_rate, OUTPUT_SAMPLE_RATE)
    return (np.clip(samples, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)


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
