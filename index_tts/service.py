"""The synthesizer service: one per process, between the front ends (UI, HTTP) and an engine.

It owns everything stateful: the engine (loaded in a background thread so the page is up in
seconds), the lock that serializes synthesis, request validation, and writing outputs. It knows
nothing of Gradio or FastAPI; they turn its exceptions into their own errors:

    ValidationError (a ValueError) - the request is bad; `.field` names the culprit.
    NotReady                       - the engine is still loading (or failed to); carries progress.
    Busy                           - the queue is full; carries how many seconds to wait.
    Cancelled                      - the caller asked to stop (e.g. a client hung up); no file written.
    TimedOut                       - the request ran past `Limits.request_timeout_s`; no file written.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import math
import os
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Union

import numpy as np
import soundfile as sf
import soxr

from index_tts.emotion import EMOTIONS, EmotionSpec
from index_tts.encoding import audio_format, encode
from index_tts.engines.base import Engine, EngineRequest, GenerationParams, NothingToSpeak, ProgressFn, no_progress
from index_tts.storage import (DataDir, EmotionPresetStore, GlossaryStore, HistoryStore, Preset, PresetStore, Voice, VoiceExists,
                               VoiceStore, atomic_write_bytes, atomic_write_text, default_data_dir, sanitize_name)
from index_tts.storage import PresetProblem as Problem
from index_tts.subtitles import to_srt
from index_tts.text import tags
from index_tts.timestretch import MAX_SPEED, MIN_SPEED, time_stretch

log = logging.getLogger(__name__)

OUTPUT_SAMPLE_RATE = 22050
WEIGHTS_HELP = "To use IndexTTS2, fetch its weights with `python -m index_tts download` (or ./start_app.sh restart) and restart; docs/models.md explains the model store."
# When the neural engine fails to load, a damaged weight file is the likely cause.
LOAD_FAILED_HELP = ("Check the weights with `python -m index_tts doctor --verify`; "
                    "`python -m index_tts download --verify` fetches damaged files again.")
QUICK_ENGINE_MODULE = "index_tts.engines.quick"

UPLOAD_FOLDER = "tmp"   # under the data folder: uploads while a request runs

MAX_IMPORT_VOICES = 500
MAX_IMPORT_FILE_BYTES = 20 * 2**20     # one voice.wav (60 s of 48 kHz 32-bit float is 11.5 MB)
MAX_IMPORT_BYTES = 1024 * 2**20

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


class Busy(RuntimeError):
    """Too many requests are waiting; the caller should retry after `retry_after_s` seconds."""

    def __init__(self, retry_after_s: int, message: str):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFound(LookupError):
    """A named thing (voice, preset, history entry, emotion preset, glossary term) does not exist.
    `field` names the request field that named it (for the HTTP `param` and the UI message)."""

    def __init__(self, kind: str, name: object, field: str = "name"):
        super().__init__(f"{field}: no {kind} named {name!r}")
        self.kind, self.name, self.field = kind, name, field


class Conflict(FileExistsError):
    """Saving or renaming would replace something of the same name and the caller did not ask to.
    (A FileExistsError, so callers written against the storage layer's VoiceExists keep working.)"""

    def __init__(self, field: str, message: str):
        super().__init__(message if message.startswith(field) else f"{field}: {message}")
        self.field = field


AlreadyExists = Conflict


class Cancelled(RuntimeError):
    """The caller cancelled the request (its cancel event was set); nothing was written."""


class TimedOut(RuntimeError):
    """The request took longer than `Limits.request_timeout_s`; nothing was written."""


# What a front end catches to show a message (UI) or map to a status (HTTP).
ServiceError = (ValidationError, NotFound, Conflict, Busy, NotReady, TimedOut, Cancelled)


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 5000
    max_emotion_text_chars: int = 1000
    max_voice_seconds: float = 60.0   # uploads; the engine itself keeps only the first 15 s
    min_voice_seconds: float = 0.3
    silence_peak: float = 1e-3        # about -60 dBFS: below this the voice carries nothing
    min_sample_rate: int = 4000       # uploads outside this range are not speech recordings
    max_sample_rate: int = 384000
    # Containers an uploaded file may be (soundfile's names); anything else is refused unread.
    upload_formats: tuple[str, ...] = ("WAV", "WAVEX", "FLAC", "MP3", "OGG", "AIFF", "W64", "RF64", "CAF")
    max_upload_bytes: int = 20 * 1024 * 1024  # enforced by the HTTP layer while it reads the body
    max_queue: int = 8                # requests that may wait behind the running one; more -> Busy
    request_timeout_s: float = 600.0  # from admission (queue wait included) to the written file


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
                container = sf.info(str(path)).format
                if container not in limits.upload_formats:
                    raise ValidationError(field_name, f"{container} files are not accepted (use one of "
                                                      f"{', '.join(limits.upload_formats)})")
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

    lo, hi = limits.min_sample_rate, limits.max_sample_rate
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not lo <= int(sr) <= hi:
        raise ValidationError(field_name, f"sample rate must be a whole number in [{lo}, {hi}], got {sr!r}")
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
    output_format:  one of encoding.FORMAT_NAMES (wav, flac, mp3, ogg, opus, pcm); 22050 Hz
                    16-bit mono (opus: 24 kHz).
    use_glossary:   apply the custom term pronunciations (the service's GlossaryStore).
    speed:          playback speed of the result, MIN_SPEED..MAX_SPEED (1 = as spoken); applied
                    after the engine by a pitch-preserving time stretch (timestretch.py).
    """

    text: str
    voice: AudioInput | None
    emotion: EmotionSpec = field(default_factory=EmotionSpec)
    generation: GenerationParams = field(default_factory=GenerationParams)
    emotion_audio: AudioInput | None = None
    output_format: str = "wav"
    use_glossary: bool = True
    speed: float = 1.0

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
        _rethrow_named(lambda: audio_format(self.output_format), "output_format")
        speed = self.speed
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) \
                or not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValidationError("speed", f"must be a number in [{MIN_SPEED}, {MAX_SPEED}], got {speed!r}")

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


@contextmanager
def _named(kind: str, name: object, field_name: str = "name"):
    """Storage errors about a named thing as the service's typed errors."""
    try:
        yield
    except VoiceExists as e:
        raise Conflict(field_name, str(e)) from e
    except FileNotFoundError as e:
        raise NotFound(kind, name, field_name) from e
    except ValueError as e:
        raise ValidationError(field_name, str(e)) from e


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
class TimedSegment:
    """A spoken segment in the output: where it is, and the emotion the engine was given for it."""

    text: str
    start_s: float
    end_s: float
    emotion: str

    def as_dict(self) -> dict:
        return {"text": self.text, "start": round(self.start_s, 3), "end": round(self.end_s, 3), "emotion": self.emotion}


@dataclass(frozen=True)
class PlannedSegment:
    """A preview row: how the engine will split the text, and the inline tag's emotion ("" when
    the request's own emotion applies); pause_after_ms is an inline pause that follows it."""

    text: str
    n_tokens: int
    emotion: str = ""
    pause_after_ms: int = 0


@dataclass(frozen=True)
class SynthesisResult:
    path: Path
    sample_rate: int
    duration_s: float
    segments: list[tuple[str, float, float]]
    engine: str
    elapsed_s: float
    emotion_model: str = ""  # text mode: which model read the emotion text (engines may not say)
    format: str = "wav"      # encoding.FORMATS key; the file suffix matches
    timeline: list[TimedSegment] = field(default_factory=list)  # segments with their emotion
    srt_path: Path | None = None                                 # subtitles of this output
    history_id: str = ""                                         # its history record


@dataclass
class Rendered:
    """Speech before it is written: int16 mono at OUTPUT_SAMPLE_RATE and where each segment is."""

    audio: np.ndarray
    timeline: list[TimedSegment]
    emotion_model: str = ""


def describe_emotion(spec: EmotionSpec) -> str:
    """A short label of what the engine is told, e.g. "sad 0.80 (weight 0.60)" or "same as voice"."""
    if spec.mode == "vector" and spec.vector:
        parts = [f"{name} {v:.2f}" for name, v in sorted(zip(EMOTIONS, spec.vector), key=lambda kv: -kv[1]) if v > 0][:3]
        return f"{' + '.join(parts) or 'neutral'} (weight {spec.weight:.2f})"
    if spec.mode == "text":
        return f"text: {spec.text[:40]}" if spec.text else "text: read from the words"
    return {"same_as_voice": "same as voice", "audio": "emotion reference"}.get(spec.mode, spec.mode)


def tag_emotion(tag: tags.EmotionTag) -> EmotionSpec:
    return EmotionSpec(mode="vector", vector=tag.vector, weight=tag.weight)


def parse_tags(text: str) -> list[tags.Speech | tags.Pause]:
    try:
        return tags.parse(text)
    except tags.TagError as e:
        raise ValidationError("text", str(e)) from e


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
        self.data.remove_crash_leftovers()  # a previous process may have been killed mid-write
        self.presets = PresetStore(self.data.presets)
        self.glossary = GlossaryStore(self.data.glossary)
        self.voices = VoiceStore(self.data.voices)
        self.history = HistoryStore(self.data.history, self.data.outputs)
        self.emotion_presets = EmotionPresetStore(self.data.emotion_presets)
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
        # Admission: requests inside synthesize() (running + waiting), bounded by limits.max_queue.
        self._admission_lock = threading.Lock()
        self._in_flight = 0
        self._typical_s = 5.0  # running mean of request durations, for Retry-After estimates

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

    # -- voice library ------------------------------------------------------------------------

    def save_voice(self, name: str, audio: AudioInput, *, tags: object = (), note: object = "",
                   default_emotion: object = None, overwrite: bool = False) -> tuple[Voice, bool]:
        """Check a reference like a synthesis voice (length, silence, rate) and store it in the
        library as 16-bit WAV. Raises ValidationError naming the field; VoiceExists when the name
        is taken and `overwrite` is false."""
        samples, sr = decode_audio(audio, "voice", self.limits)
        buffer = io.BytesIO()
        sf.write(buffer, samples, sr, format="WAV", subtype="PCM_16")
        try:
            return self.voices.save(name, buffer.getvalue(), tags=tags, note=note,
                                    default_emotion=default_emotion, overwrite=overwrite)
        except TypeError as e:
            raise ValidationError("default_emotion", f"cannot be stored: {e}") from e
        except VoiceExists as e:
            raise Conflict("name", str(e)) from e
        except ValueError as e:
            message = str(e)
            field_name = message.split(" ", 1)[0] if message.split(" ", 1)[0] in ("tags", "note") else "name"
            raise ValidationError(field_name, message) from e

    def voice_path(self, name: str) -> Path:
        """The audio file of a saved voice, for SynthesisRequest.voice; ValidationError("voice")."""
        try:
            return self.voices.get(name).audio_path
        except FileNotFoundError as e:
            raise ValidationError("voice", str(e)) from e
        except ValueError as e:
            raise ValidationError("voice", str(e)) from e

    def export_voices(self) -> bytes:
        """The whole voice library as a zip: <name>/voice.json and <name>/voice.wav per voice."""
        voices, _ = self.voices.scan()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for voice in voices:
                archive.writestr(f"{voice.name}/voice.json", json.dumps(voice.as_dict(), ensure_ascii=False, indent=2))
                archive.write(voice.audio_path, f"{voice.name}/voice.wav")
        return buffer.getvalue()

    def import_voices(self, zip_path: str | os.PathLike, overwrite: bool = False) -> tuple[list[str], list[str]]:
        """Add the voices of a library zip; returns (imported, skipped because the name exists).

        Every member is checked before anything is written (all or nothing): only
        `<name>/voice.json` and `<name>/voice.wav` members, no paths out of the folder, sizes
        bounded, the metadata readable and the audio a usable voice. An existing voice is only
        replaced when `overwrite` is true; otherwise it is skipped and named in the result.
        """
        field_name = "voices_zip"
        try:
            archive = zipfile.ZipFile(zip_path)
        except (OSError, zipfile.BadZipFile) as e:
            raise ValidationError(field_name, f"is not a zip file ({e})") from e
        with archive:
            members = archive.infolist()
            if len(members) > 2 * MAX_IMPORT_VOICES:
                raise ValidationError(field_name, f"has {len(members)} files; a library zip holds at most {MAX_IMPORT_VOICES} voices")
            if sum(m.file_size for m in members) > MAX_IMPORT_BYTES:
                raise ValidationError(field_name, f"unpacks to more than {MAX_IMPORT_BYTES // 2**20} MB")
            found: dict[str, dict[str, bytes]] = {}
            for member in members:
                if member.is_dir():
                    continue
                parts = member.filename.split("/")
                if ("\\" in member.filename or member.filename.startswith("/") or len(parts) != 2
                        or parts[0] in ("", ".", "..") or parts[1] not in ("voice.json", "voice.wav")):
                    raise ValidationError(field_name, f"member {member.filename[:80]!r} is not <name>/voice.json or <name>/voice.wav")
                if member.file_size > MAX_IMPORT_FILE_BYTES:
                    raise ValidationError(field_name, f"member {member.filename[:80]!r} is too large")
                found.setdefault(parts[0], {})[parts[1]] = archive.read(member)
        checked = []
        for folder, files in found.items():
            if set(files) != {"voice.json", "voice.wav"}:
                raise ValidationError(field_name, f"voice {folder!r} needs both voice.json and voice.wav")
            try:
                name = sanitize_name(folder, "voice")
                meta = json.loads(files["voice.json"].decode("utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError("voice.json is not an object")
            except (UnicodeDecodeError, ValueError) as e:
                raise ValidationError(field_name, f"voice {folder!r}: {e}") from e
            if name != folder:
                raise ValidationError(field_name, f"voice folder {folder!r} is not a valid voice name")
            try:
                data, rate = sf.read(io.BytesIO(files["voice.wav"]), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError) as e:
                raise ValidationError(field_name, f"voice {folder!r}: voice.wav is not audio ({e})") from e
            try:
                samples, sr = decode_audio((rate, data), "voice", self.limits)
            except ValidationError as e:
                raise ValidationError(field_name, f"voice {folder!r}: {e}") from e
            checked.append((name, samples, sr, meta))
        if not checked:
            raise ValidationError(field_name, "holds no voices")
        imported, skipped = [], []
        for name, samples, sr, meta in checked:
            if self.voices.exists(name) and not overwrite:
                skipped.append(name)
                continue
            try:
                self.save_voice(name, (sr, samples), tags=meta.get("tags"), note=meta.get("note"),
                                default_emotion=meta.get("default_emotion"), overwrite=overwrite)
            except ValidationError as e:
                raise ValidationError(field_name, f"voice {name!r}: {e}") from e
            imported.append(name)
        return imported, skipped

    # -- the data the front ends show and edit (every method raises the typed errors) -----------

    @property
    def data_root(self) -> Path:
        """The data folder (outputs, presets, voices, history); front ends pass it to Gradio's allowed paths."""
        return self.data.root

    @property
    def upload_dir(self) -> Path:
        """Where front ends put uploads while a request runs (data/tmp; emptied at start)."""
        folder = self.data.root / UPLOAD_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def clear_uploads(self) -> None:
        """Remove uploads left by a crashed process (they belong to no request now)."""
        for stale in self.upload_dir.glob("*"):
            if stale.is_file():
                stale.unlink(missing_ok=True)

    def list_voices(self) -> tuple[list[Voice], list[Problem]]:
        """The saved voices (sorted by name) and the unreadable ones, as problems."""
        return self.voices.scan()

    def get_voice(self, name: str) -> Voice:
        with _named("voice", name):
            return self.voices.get(name)

    def rename_voice(self, name: str, new_name: str, overwrite: bool = False) -> Voice:
        """Raises NotFound (name), Conflict / ValidationError (new_name)."""
        self.get_voice(name)
        with _named("voice", new_name, "new_name"):
            return self.voices.rename(name, new_name, overwrite=overwrite)

    def delete_voice(self, name: str) -> None:
        with _named("voice", name):
            if not self.voices.delete(name):
                raise FileNotFoundError(name)

    def export_voices_to_file(self) -> Path:
        """The voice library zip written under data/exports; returns its path."""
        path = self.data.root / "exports" / f"voice-library-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        atomic_write_bytes(path, self.export_voices())
        return path

    def list_history(self, limit: int = 200) -> list[dict]:
        """History records, newest first."""
        return self.history.list(limit)

    def get_history(self, entry_id: str) -> dict:
        with _named("history entry", entry_id, "history"):
            return self.history.get(entry_id)

    def history_files(self, entry_id: str) -> list[Path]:
        """An entry's files: its audio first, then its subtitles and line zip where it has them."""
        record = self.get_history(entry_id)
        sides = (self.history.side_file(entry_id, ".srt"), self.history.side_file(entry_id, ".lines.zip"))
        return [self.history.audio_path(record), *(p for p in sides if p.is_file())]

    def delete_history(self, entry_id: str) -> None:
        with _named("history entry", entry_id, "history"):
            if not self.history.delete(entry_id):
                raise FileNotFoundError(entry_id)

    def list_presets(self) -> tuple[list[str], list[Problem]]:
        """Saved preset names (sorted) and the unreadable ones, as problems."""
        return self.presets.scan()

    def save_preset(self, name: str, params: dict, voice: AudioInput | None = None,
                    emotion_audio: AudioInput | None = None) -> tuple[Preset, bool]:
        """Save a studio state; returns it and whether one of that name was replaced."""
        with _named("preset", name):
            return self.presets.save(name, params, voice=voice, emotion_audio=emotion_audio)

    def load_preset(self, name: str) -> Preset:
        with _named("preset", name):
            return self.presets.load(name)

    def delete_preset(self, name: str) -> None:
        with _named("preset", name):
            if not self.presets.delete(name):
                raise FileNotFoundError(name)

    def list_emotion_presets(self) -> list[dict]:
        """The user's emotion presets: {name, mode, weight, sliders, text, use_random}."""
        return self.emotion_presets.list()

    @property
    def emotion_presets_problem(self) -> str:
        return self.emotion_presets.problem

    def save_emotion_preset(self, name: str, mode: str, weight: float, sliders: list[float], text: str = "",
                            use_random: bool = False) -> tuple[dict, bool]:
        """Add or replace a user emotion preset; returns it and whether one was replaced.
        ValidationError("emotion_preset.<field>")."""
        try:
            return self.emotion_presets.save({"name": name, "mode": mode, "weight": weight, "sliders": sliders,
                                              "text": text, "use_random": use_random})
        except ValueError as e:
            field_name = str(e).split(" ", 1)[0].rstrip(":")
            raise ValidationError(f"emotion_preset.{field_name}", str(e)) from e

    def delete_emotion_preset(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", "is empty")
        if not self.emotion_presets.delete(name):
            raise NotFound("emotion preset", name.strip())

    def list_glossary(self) -> list[tuple[str, str, str]]:
        """(term, Chinese reading, English reading) rows; see glossary_problem for an unreadable file."""
        return self.glossary.list()

    @property
    def glossary_problem(self) -> str:
        return self.glossary.problem

    def add_glossary_term(self, term: str, zh: str | None = None, en: str | None = None) -> bool:
        """Add or replace a term; returns whether one was replaced. ValidationError("glossary.<field>")."""
        try:
            return self.glossary.add(term, zh, en)[1]
        except ValueError as e:
            field_name = str(e).split(" ", 1)[0].rstrip(":")
            raise ValidationError(f"glossary.{field_name}", str(e)) from e

    def remove_glossary_term(self, term: str) -> None:
        if not isinstance(term, str) or not term.strip():
            raise ValidationError("glossary.term", "is empty")
        if not self.glossary.remove(term):
            raise NotFound("glossary term", term.strip(), "glossary.term")

    def compose_dialogue(self, script: str, roles: dict, *, pause_ms: int = 400, output_format: str = "wav",
                         progress: ProgressFn = no_progress, cancel: threading.Event | None = None):
        """Voice a `Role: line` script (see index_tts.dialogue); returns a DialogueResult."""
        from index_tts.dialogue import compose
        return compose(self, script, roles, pause_ms=pause_ms, output_format=output_format, progress=progress)

    def regenerate(self, entry_id: str, progress: ProgressFn = no_progress, cancel: threading.Event | None = None):
        """Make a history entry again with its saved settings: a SynthesisResult for speech, a
        DialogueResult for a dialogue. NotFound / ValidationError("history")."""
        if self.get_history(entry_id).get("kind") == "dialogue":
            from index_tts.dialogue import compose_from_history
            return compose_from_history(self, entry_id, progress)
        return self.synthesize(self.request_from_history(entry_id), progress, cancel=cancel)

    # -- work ---------------------------------------------------------------------------------

    def preview_segments(self, text: str, max_tokens: int) -> list[PlannedSegment]:
        """How the engine will split `text`, inline tags applied (cheap; no synthesis).
        A malformed tag raises ValidationError("text") pointing at it."""
        engine = self._ready_engine()
        if not isinstance(text, str) or not text.strip():
            return []
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, float)) or not math.isfinite(max_tokens):
            raise ValidationError("generation.max_text_tokens_per_segment", f"must be a number, got {max_tokens!r}")
        lo, hi = GenerationParams.RANGES["max_text_tokens_per_segment"]
        max_tokens = int(min(max(max_tokens, lo), hi))
        rows: list[PlannedSegment] = []
        for item in parse_tags(text.strip()[: self.limits.max_text_chars]):
            if isinstance(item, tags.Pause):
                if rows:
                    rows[-1] = replace(rows[-1], pause_after_ms=rows[-1].pause_after_ms + item.ms)
                continue
            label = describe_emotion(tag_emotion(item.emotion)) if item.emotion else ""
            rows += [PlannedSegment(seg.text, seg.n_tokens, label) for seg in engine.segments(item.text, max_tokens)]
        return rows

    def render(self, request: SynthesisRequest, progress: ProgressFn = no_progress,
               on_audio: Callable[[np.ndarray], None] | None = None,
               check: Callable[[], None] = lambda: None) -> tuple[Rendered, EngineRequest]:
        """Validate and speak `request` without writing anything; returns the audio and the
        validated engine request (its voice and emotion as the engine saw them).

        Inline tags split the text into parts; the engine is called once per part (its voice
        caches make that cheap) and the parts are joined with the tag pauses, or with the
        segment silence where two parts meet without one. on_audio as in `synthesize`; `check`
        raises to abandon the request (cancelled, too late) while it waits for the engine.
        """
        engine = self._ready_engine()
        progress(0.0, "checking the request")
        base = request.validate(self.limits, self.glossary.load() if request.use_glossary is True else None)
        items = parse_tags(base.text)
        gap = _silence(base.generation.interval_silence_ms)
        parts = [item for item in items if isinstance(item, tags.Speech)]

        pieces: list[np.ndarray] = []
        timeline: list[TimedSegment] = []
        length = 0                       # samples written so far
        pending = 0                      # silence (samples) owed before the next audio
        after_speech = False             # the last item was speech: parts meeting get the segment gap
        emotion_models: list[str] = []
        done = 0

        def emit(chunk: np.ndarray) -> None:
            nonlocal length
            pieces.append(chunk)
            length += len(chunk)
            if on_audio is not None and len(chunk):
                on_audio(chunk)

        progress(0.02, "waiting for the engine")
        while not self._engine_lock.acquire(timeout=0.1):
            check()  # a request cancelled (or late) while queued leaves the queue
        try:
            for item in items:
                if isinstance(item, tags.Pause):
                    pending += _silence(item.ms).size
                    after_speech = False
                    continue
                emotion = tag_emotion(item.emotion) if item.emotion else base.emotion
                _rethrow_named(emotion.validate, "emotion")
                part_request = replace(base, text=item.text, emotion=emotion)
                lead = np.zeros(pending + (gap.size if after_speech else 0), np.int16)
                span = (0.03 + 0.9 * done / len(parts), 0.9 / len(parts))
                part_progress = (lambda f, stage, s=span: progress(s[0] + s[1] * min(max(f, 0.0), 1.0), stage))
                streamed: list[int] = []
                part_start = length

                def on_segment(index: int, pcm: np.ndarray, sample_rate: int, lead=lead) -> None:
                    emit(np.concatenate([lead if index == 0 else gap, _to_output_pcm(pcm, sample_rate)]))
                    streamed.append(index)

                try:
                    # on_segment only when streaming: engines without streaming keep working.
                    extra = {"on_segment": on_segment} if on_audio is not None and _takes_on_segment(engine) else {}
                    output = engine.synthesize(part_request, part_progress, **extra)
                except NothingToSpeak:
                    continue   # e.g. a part that is only punctuation; the whole text is checked below
                finally:
                    done += 1
                offset = (part_start + lead.size) / OUTPUT_SAMPLE_RATE
                if not streamed:
                    emit(np.concatenate([lead, _to_output_pcm(output.audio, output.sample_rate)]))
                label = describe_emotion(emotion)
                timeline += [TimedSegment(text, offset + s, offset + e, label) for text, s, e in output.segments]
                if output.emotion_model:
                    emotion_models.append(output.emotion_model)
                pending, after_speech = 0, True
            if not timeline:
                raise ValidationError("text", "has nothing to speak (no words or characters)")
            if pending:
                emit(np.zeros(pending, np.int16))   # a pause tag at the very end
        finally:
            self._engine_lock.release()
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        return Rendered(audio, timeline, "; ".join(dict.fromkeys(emotion_models))), base

    @contextmanager
    def _admitted(self):
        """Hold one of the 1 + max_queue places for the duration of a request, or raise Busy."""
        with self._admission_lock:
            if self._in_flight > self.limits.max_queue:
                wait = max(1, math.ceil(self._typical_s * self._in_flight))
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

    def queue_length(self) -> int:
        """Requests now inside synthesize(), the running one included."""
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
        timeout = self.limits.request_timeout_s

        def check() -> None:
            # Engines call progress often, so checking there bounds how long abandoned work runs.
            if cancel is not None and cancel.is_set():
                raise Cancelled("the request was cancelled")
            if time.monotonic() - started > timeout:
                raise TimedOut(f"the request took longer than {timeout:g} s")

        def checked_progress(fraction: float, stage: str) -> None:
            check()
            progress(fraction, stage)

        speed = float(request.speed) if isinstance(request.speed, (int, float)) and not isinstance(request.speed, bool) else 1.0
        sent: list[np.ndarray] = []  # what on_audio received; the file is exactly this when streaming

        def stretched_audio(chunk: np.ndarray) -> None:
            check()
            chunk = time_stretch(chunk, OUTPUT_SAMPLE_RATE, speed)
            sent.append(chunk)
            on_audio(chunk)

        with self._admitted():
            rendered, base = self.render(request, checked_progress, stretched_audio if on_audio is not None else None, check)
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
                "request": self._request_record(request, base),
            })
        progress(1.0, "done")
        return SynthesisResult(
            path=path,
            sample_rate=OUTPUT_SAMPLE_RATE,
            duration_s=len(rendered.audio) / OUTPUT_SAMPLE_RATE,
            segments=[(s.text, s.start_s, s.end_s) for s in rendered.timeline],
            engine=self._ready_engine().name,
            elapsed_s=time.monotonic() - started,
            emotion_model=rendered.emotion_model,
            format=fmt.name,
            timeline=rendered.timeline,
            srt_path=srt,
            history_id=entry_id,
        )

    # -- outputs and history ------------------------------------------------------------------

    def write_output(self, rendered: Rendered, fmt_name: str, record: dict) -> tuple[Path, Path, str]:
        """Write audio (outputs/), subtitles and the history record; returns (audio, srt, history id)."""
        fmt = audio_format(fmt_name)
        path = self.data.new_output_path(fmt.suffix)
        atomic_write_bytes(path, encode(rendered.audio, OUTPUT_SAMPLE_RATE, fmt))
        entry_id = path.name.split(".")[0]
        srt = self.history.side_file(entry_id, ".srt")
        atomic_write_text(srt, to_srt((s.text, s.start_s, s.end_s) for s in rendered.timeline))
        self.history.add(path, {
            **record,
            "format": fmt.name,
            "duration_s": round(len(rendered.audio) / OUTPUT_SAMPLE_RATE, 3),
            "engine": self._ready_engine().name,
            "segments": [s.as_dict() for s in rendered.timeline],
            "srt": srt.name,
        })
        return path, srt, entry_id

    def _keep_audio(self, samples: np.ndarray, sample_rate: int) -> str:
        buffer = io.BytesIO()
        # 32-bit float keeps the decoded samples exactly: a regenerated voice hits the same caches.
        sf.write(buffer, samples, sample_rate, format="WAV", subtype="FLOAT")
        return self.history.keep_voice(audio_key(samples, sample_rate), buffer.getvalue())

    def _request_record(self, request: SynthesisRequest, base: EngineRequest) -> dict:
        """Everything needed to run `request` again, as JSON (audio kept under history/voices)."""
        emotion = base.emotion
        record_emotion = {"mode": emotion.mode, "weight": emotion.weight, "use_random": emotion.use_random,
                          "vector": list(emotion.vector) if emotion.vector is not None else None, "text": emotion.text}
        if emotion.mode == "audio":
            record_emotion["audio"] = self._keep_audio(emotion.audio, emotion.audio_sr)
        generation = {name: getattr(base.generation, name) for name in base.generation.__dataclass_fields__}
        return {"text": request.text, "voice": self._keep_audio(base.voice, base.voice_sr), "emotion": record_emotion,
                "generation": generation, "output_format": audio_format(request.output_format).name,
                "use_glossary": request.use_glossary, "speed": float(request.speed)}

    def request_from_history(self, entry_id: str) -> SynthesisRequest:
        """The request a speech history entry was made with; ValidationError("history") otherwise."""
        try:
            record = self.history.get(entry_id)
            saved = record.get("request")
            if record.get("kind") != "speech" or not isinstance(saved, dict):
                raise ValueError("only single-voice results can be regenerated here")
            emotion = dict(saved["emotion"])
            audio = self.history.voice_file(emotion.pop("audio")) if emotion.get("mode") == "audio" else None
            vector = emotion.pop("vector", None)
            spec = EmotionSpec(**emotion, vector=tuple(vector) if vector is not None else None)
            return SynthesisRequest(text=saved["text"], voice=self.history.voice_file(saved["voice"]), emotion=spec,
                                    generation=GenerationParams(**saved["generation"]), emotion_audio=audio,
                                    output_format=saved.get("output_format", "wav"),
                                    use_glossary=bool(saved.get("use_glossary", True)), speed=float(saved.get("speed", 1.0)))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValidationError("history", str(e).strip("'\"")) from e


def _silence(ms: float) -> np.ndarray:
    return np.zeros(int(OUTPUT_SAMPLE_RATE * ms / 1000), np.int16)


def title_of(text: str) -> str:
    try:
        words = tags.strip_tags(text)
    except tags.TagError:
        words = text
    return " ".join(words.split())[:80]


def _takes_on_segment(engine: Engine) -> bool:
    """Whether the engine can stream segments; one that cannot gets the whole audio as one chunk."""
    try:
        return "on_segment" in inspect.signature(engine.synthesize).parameters
    except (TypeError, ValueError):
        return False


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
