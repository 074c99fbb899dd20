"""What a front end sends (SynthesisRequest, checked by its validate()) and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from index_tts.emotion import EMOTIONS, EmotionSpec
from index_tts.encoding import audio_format
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.service.checks import AudioInput, Limits, check_number, check_text
from index_tts.service.errors import ValidationError, rethrow_named
from index_tts.service.models import check_language, check_model
from index_tts.service.uploads import audio_key, decode_audio
from index_tts.timestretch import MAX_SPEED, MIN_SPEED


DURATION_RANGE_S = (0.1, 3600.0)  # what a `duration` may ask for at all; the text decides what it can reach


@dataclass(frozen=True)
class SynthesisRequest:
    """One synthesis request, as any front end builds it. `validate()` is the only checker.

    voice:          the reference voice (path, or (sample_rate, samples)).
    emotion:        EmotionSpec. In "audio" mode its audio may instead come as `emotion_audio`
                    (path or (sample_rate, samples)); validate() decodes it into the spec.
    output_format:  one of encoding.FORMAT_NAMES (wav, flac, mp3, ogg, opus, pcm); 22050 Hz
                    16-bit mono (opus: 24 kHz).
    use_glossary:   apply the custom term pronunciations (the service's GlossaryStore).
    speed:          playback speed of the result, MIN_SPEED..MAX_SPEED (1 = as spoken). Engines
                    with duration control render it as duration_factor / speed when that is in
                    DURATION_FACTOR_RANGE; otherwise a pitch-preserving time stretch of the result
                    (timestretch.py).
    duration:       the length of the result in seconds (None: as spoken). The engine draws the
                    content first, then picks one duration factor for the whole text (pauses and
                    segment silences stay as they are); a target outside the factor range is a
                    ValidationError("duration") giving the range in seconds. Not with speed.
    max_duration:   at most this long (seconds): the natural pace when it fits, else the slowest
                    factor that ends in time, down to the range's fastest (dubbing's `fit` mode;
                    the result may then still be longer). Not with duration or speed.
    model:          "indextts-2" or "indextts-2.5" (models.MODEL_IDS); None: the studio's default.
    language:       IndexTTS-2.5's text language, one of models.LANGUAGES ("auto": from the script);
                    IndexTTS2 ignores it.
    """

    text: str
    voice: AudioInput | None
    emotion: EmotionSpec = field(default_factory=EmotionSpec)
    generation: GenerationParams = field(default_factory=GenerationParams)
    emotion_audio: AudioInput | None = None
    output_format: str = "wav"
    use_glossary: bool = True
    speed: float = 1.0
    model: str | None = None
    language: str = "auto"
    duration: float | None = None
    max_duration: float | None = None

    def validate(self, limits: Limits = Limits(), glossary: dict[str, dict[str, str]] | None = None) -> EngineRequest:
        """Check every field; return the engine's view of the request or raise ValidationError.

        glossary: the current custom pronunciations; passed on only when `use_glossary` is set.
        """
        text = check_text(self.text, "text", limits.max_text_chars, required=True).strip()
        if not isinstance(self.use_glossary, bool):
            raise ValidationError("use_glossary", f"must be true or false, got {self.use_glossary!r}")
        rethrow_named(lambda: audio_format(self.output_format), "output_format")
        check_number(self.speed, "speed", MIN_SPEED, MAX_SPEED)
        check_model(self.model)
        language = check_language(self.language)
        if self.duration is not None:
            check_number(self.duration, "duration", *DURATION_RANGE_S)
            if self.speed != 1.0:
                raise ValidationError("duration", "set either duration or speed, not both")
        if self.max_duration is not None:
            check_number(self.max_duration, "max_duration", *DURATION_RANGE_S)
            if self.speed != 1.0 or self.duration is not None:
                raise ValidationError("max_duration", "goes with neither duration nor speed")

        if not isinstance(self.generation, GenerationParams):
            raise ValidationError("generation", f"must be GenerationParams, got {type(self.generation).__name__}")
        for name, (lo, hi) in GenerationParams.RANGES.items():
            value = getattr(self.generation, name)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:  # beyond any float
                raise ValidationError(f"generation.{name}", f"must be in [{lo}, {hi}], got a number of {value.bit_length()} bits")
        rethrow_named(self.generation.validate, "generation")

        emotion = self.emotion
        if not isinstance(emotion, EmotionSpec):
            raise ValidationError("emotion", f"must be an EmotionSpec, got {type(emotion).__name__}")
        check_number(emotion.weight, "emotion.weight", 0.0, 1.0)
        if not isinstance(emotion.use_random, bool):
            raise ValidationError("emotion.use_random", f"must be true or false, got {emotion.use_random!r}")
        if emotion.mode == "vector" and emotion.vector is not None:
            if isinstance(emotion.vector, (str, bytes)) or not hasattr(emotion.vector, "__len__"):
                raise ValidationError("emotion.vector", f"must be 8 numbers, got {emotion.vector!r}")
            if len(emotion.vector) != len(EMOTIONS):
                raise ValidationError("emotion.vector", f"must have {len(EMOTIONS)} values ({', '.join(EMOTIONS)})")
            for name, value in zip(EMOTIONS, emotion.vector):
                check_number(value, f"emotion.vector.{name}", 0.0, 1.2)
            emotion = replace(emotion, vector=tuple(float(v) if isinstance(v, (int, float)) else v for v in emotion.vector))
        if emotion.mode == "audio":
            source = self.emotion_audio if self.emotion_audio is not None else emotion.audio
            if source is None:
                raise ValidationError("emotion.audio", "is required in 'audio' mode")
            emo_samples, emo_sr = decode_audio(source, "emotion.audio", limits, sample_rate=emotion.audio_sr)
            emotion = replace(emotion, audio=emo_samples, audio_sr=emo_sr)
        if emotion.mode == "text":
            check_text(emotion.text, "emotion.text", limits.max_emotion_text_chars)
        rethrow_named(emotion.validate, "emotion")

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
            language=language,
        )



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
    engine: str = ""  # the engine's name ("" when joined from several, e.g. a dialogue)
    duration_factor: float = 1.0  # the tempo it was rendered at (picked for a target duration)

