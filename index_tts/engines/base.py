"""The engine contract: what the synthesizer service asks of an engine, and what it gets back.

An engine turns one validated request into audio. It knows nothing of files, users, HTTP or UI:
the service decodes uploads, validates, queues, and writes outputs. Two engines implement this:
the IndexTTS2 neural engine (`engines/indextts2.py`) and the offline quick voice
(`engines/quick.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from index_tts.emotion import EmotionSpec

# progress(fraction in [0, 1], stage name)
ProgressFn = Callable[[float, str], None]
# on_segment(segment index, int16 mono samples of that segment without the pause, sample rate)
SegmentFn = Callable[[int, np.ndarray, int], None]


def no_progress(fraction: float, stage: str) -> None:
    pass


# The quality modes, from upstream's computation to the fastest trade-off (the one definition the
# API schema and the UI read).
QUALITY_MODES = ("exact", "balanced", "fast")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and segmentation settings; defaults are upstream IndexTTS2's.

    Ranges are enforced by `validate` (and mirrored by the UI sliders).
    """

    do_sample: bool = True
    temperature: float = 0.8          # 0.1 .. 2.0
    top_p: float = 0.8                # 0 .. 1
    top_k: int = 30                   # 0 .. 100; 0 disables top-k
    num_beams: int = 3                # 1 .. 10
    repetition_penalty: float = 10.0  # 0.1 .. 20
    length_penalty: float = 0.0       # -2 .. 2
    max_mel_tokens: int = 1500        # 50 .. 1815
    max_text_tokens_per_segment: int = 120  # 20 .. 600
    interval_silence_ms: int = 200    # 0 .. 5000, silence between segments
    seed: int | None = None           # None: a fresh seed per request
    # One of QUALITY_MODES. "exact": upstream's computation. "balanced": the same codes as exact
    # (GPT and what feeds it unchanged), the mel decoder and vocoder in bf16 where the hardware
    # has it. "fast": balanced plus fewer flow-matching steps and a shorter voice prompt for the
    # mel decoder, and on a CPU the GPT on bf16 weights (its codes may differ from exact). Measured effects in docs/performance.md. Engines without such trade-offs treat
    # all alike.
    quality: str = "exact"
    # Tempo: > 1 speaks slower, the same content (codes, phonemes) rendered longer with natural
    # pitch. IndexTTS2 and 2.5 scale their s2mel length regulator's target; the quick voice its
    # WORLD frame sequence. Measured limits in docs/creator-guide.md ("Timing").
    duration_factor: float = 1.0      # 0.5 .. 2.0

    QUALITIES = QUALITY_MODES

    RANGES = {
        "temperature": (0.1, 2.0),
        "top_p": (0.0, 1.0),
        "top_k": (0, 100),
        "num_beams": (1, 10),
        "repetition_penalty": (0.1, 20.0),
        "length_penalty": (-2.0, 2.0),
        "max_mel_tokens": (50, 1815),
        "max_text_tokens_per_segment": (20, 600),
        "interval_silence_ms": (0, 5000),
        "duration_factor": (0.5, 2.0),
    }

    def validate(self) -> None:
        """Raise ValueError naming the first offending field."""
        import math

        if not isinstance(self.do_sample, bool):
            raise ValueError(f"generation.do_sample must be true or false, got {self.do_sample!r}")
        for name, (lo, hi) in self.RANGES.items():
            v = getattr(self, name)
            integral = isinstance(lo, int) and isinstance(hi, int)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"generation.{name} must be a number, got {v!r}")
            if integral and not float(v).is_integer():
                raise ValueError(f"generation.{name} must be a whole number, got {v!r}")
            if not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"generation.{name} must be in [{lo}, {hi}], got {v!r}")
        if self.quality not in self.QUALITIES:
            raise ValueError(f"generation.quality must be one of {', '.join(self.QUALITIES)}, got {self.quality!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32):
            raise ValueError(f"generation.seed must be a whole number in [0, 2^32), got {self.seed!r}")


class NothingToSpeak(ValueError):
    """The text holds nothing an engine can speak (only punctuation, say)."""


class UnusableReference(ValueError):
    """A voice or emotion reference the engine cannot use (no voiced speech in it, say); `field`
    is the request field it came from ("voice" or "emotion.audio")."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class SpeechPlan(Protocol):
    """Speech whose content is decided (an engine's codes or phonemes, drawn with the request's
    seed) but whose tempo is not yet: a target duration picks the factor from it."""

    sample_rate: int

    def samples(self, duration_factor: float) -> int:
        """The exact length in samples that `finish(plan, duration_factor)` will return. Cheap."""
        ...


@dataclass(frozen=True)
class Segment:
    """One piece of the text as the engine will speak it."""

    text: str
    n_tokens: int


@dataclass(frozen=True)
class EngineRequest:
    """A validated request, as the engine sees it.

    voice: float32 mono samples in [-1, 1] of the reference voice, at `voice_sr`.
    voice_key: a content hash of the voice audio; engines key their per-voice caches on it.
    glossary: {term: {"zh": reading, "en": reading}}, the custom pronunciations to apply to this
    request's text (case-insensitive, longest term first); empty when the glossary is off.
    """

    text: str
    voice: np.ndarray
    voice_sr: int
    voice_key: str
    emotion: EmotionSpec = field(default_factory=EmotionSpec)
    generation: GenerationParams = field(default_factory=GenerationParams)
    glossary: dict[str, dict[str, str]] = field(default_factory=dict)
    # IndexTTS-2.5's text language: "auto" or one of its codes (zh, en, ja, es, ar, zhen for mixed
    # Chinese-English). Other engines ignore it.
    language: str = "auto"


@dataclass
class EngineOutput:
    """audio: int16 mono at `sample_rate`. segments: (text, start_s, end_s) per spoken segment.
    emotion_model: in text mode, what turned the emotion text into weights (e.g. "qwen", or the
    lexicon fallback with the reason); empty otherwise."""

    audio: np.ndarray
    sample_rate: int
    segments: list[tuple[str, float, float]]
    emotion_model: str = ""


class Engine(Protocol):
    name: str       # shown to users, e.g. "IndexTTS2" or "Quick voice (offline)"
    version: str    # model version, e.g. "2.0"
    device: str     # "cpu", "cuda:0"

    def segments(self, text: str, max_tokens: int) -> list[Segment]:
        """How `text` will be split, for the live preview. Cheap; no synthesis."""
        ...

    def synthesize(self, request: EngineRequest, progress: ProgressFn = no_progress,
                   on_segment: SegmentFn | None = None) -> EngineOutput:
        """Speak the request. on_segment, when given, is called in order as each segment's audio is
        final, so a front end can stream; the returned audio is the segments joined by
        `generation.interval_silence_ms` of silence."""
        ...


class TimedEngine(Engine, Protocol):
    """An engine that can hit a target duration: the content first, then the tempo. For one
    request, `finish(plan(request), f)` is what `synthesize` gives with duration_factor f, except
    that all the content is drawn before any audio (so the codes do not depend on f)."""

    def plan(self, request: EngineRequest, progress: ProgressFn = no_progress) -> SpeechPlan:
        ...

    def finish(self, plan: SpeechPlan, duration_factor: float, progress: ProgressFn = no_progress,
               on_segment: SegmentFn | None = None) -> EngineOutput:
        ...
