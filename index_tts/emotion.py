"""Emotion control: the eight IndexTTS2 dimensions and the rules that act on them.

The order of the dimensions is fixed by the checkpoint (`feat1.pt`/`feat2.pt` rows are grouped in
this order), so it must never change. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

EMOTIONS = ("happy", "angry", "sad", "afraid", "disgusted", "melancholic", "surprised", "calm")

# Rows of feat1.pt / feat2.pt per emotion, in EMOTIONS order (config.yaml `emo_num`).
EMO_NUM = (3, 17, 2, 8, 4, 5, 10, 24)

# The upstream WebUI scales slider values by these before synthesis (`normalize_emo_vec`);
# `infer()` itself does not.
WEBUI_BIAS = (0.9375, 0.875, 1.0, 1.0, 0.9375, 0.9375, 0.6875, 0.5625)
WEBUI_MAX_SUM = 0.8

DEFAULT_WEIGHT = 0.65

EmotionMode = Literal["same_as_voice", "audio", "vector", "text"]
EMOTION_MODES: tuple[EmotionMode, ...] = ("same_as_voice", "audio", "vector", "text")


def normalize_webui_vector(vector: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Apply the upstream WebUI's per-emotion bias, then cap the sum at 0.8."""
    biased = [v * b for v, b in zip(vector, WEBUI_BIAS, strict=True)]
    total = sum(biased)
    if total > WEBUI_MAX_SUM:
        biased = [v * WEBUI_MAX_SUM / total for v in biased]
    return tuple(biased)


def scale_vector(vector: tuple[float, ...] | list[float], alpha: float) -> tuple[float, ...]:
    """`infer()`'s weight rule for vector and text modes: scale by clamp(alpha, 0, 1) and
    truncate to 4 decimals (`int(x*s*10000)/10000`), but only when the scale is not 1."""
    s = min(max(alpha, 0.0), 1.0)
    if s == 1.0:
        return tuple(float(v) for v in vector)
    return tuple(int(v * s * 10000) / 10000 for v in vector)


@dataclass(frozen=True)
class EmotionSpec:
    """What the user asked for, before any engine interprets it.

    mode:       one of EMOTION_MODES.
    weight:     emo_alpha in [0, 1]. Ignored in `same_as_voice` mode (upstream forces 1.0).
    vector:     8 values in [0, 1], EMOTIONS order; `vector` mode only. These are the values the
                engine receives: the WebUI bias rule, if wanted, is applied before (see
                `normalize_webui_vector`).
    text:       an emotion description; `text` mode only. Empty means "use the text to speak".
    audio:      float32 mono samples of an emotion reference; `audio` mode only.
    audio_sr:   sample rate of `audio`.
    use_random: pick random emotion-matrix rows instead of the speaker's nearest ones.
    """

    mode: EmotionMode = "same_as_voice"
    weight: float = DEFAULT_WEIGHT
    vector: tuple[float, ...] | None = None
    text: str = ""
    audio: object | None = None  # numpy float32 [N]; typed loosely to keep this module numpy-free
    audio_sr: int = 0
    use_random: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the offending field."""
        if self.mode not in EMOTION_MODES:
            raise ValueError(f"emotion.mode must be one of {', '.join(EMOTION_MODES)}, got {self.mode!r}")
        if not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight) or not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"emotion.weight must be a number in [0, 1], got {self.weight!r}")
        if self.mode == "vector":
            if self.vector is None or len(self.vector) != len(EMOTIONS):
                raise ValueError(f"emotion.vector must have {len(EMOTIONS)} values ({', '.join(EMOTIONS)})")
            for name, v in zip(EMOTIONS, self.vector):
                if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.2:
                    raise ValueError(f"emotion.vector.{name} must be a number in [0, 1.2], got {v!r}")
        if self.mode == "audio" and self.audio is None:
            raise ValueError("emotion.audio is required in 'audio' mode")
        if self.mode == "text" and not isinstance(self.text, str):
            raise ValueError("emotion.text must be a string")
