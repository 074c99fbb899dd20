"""Emotion control: the eight IndexTTS2 dimensions and the rules that act on them.

The order of the dimensions is fixed by the checkpoint (`feat1.pt`/`feat2.pt` rows are grouped in
this order), so it must never change. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

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

# The built-in named presets: the one data file the UI, the tag parser and the API read.
BUILTIN_PRESETS_FILE = Path(__file__).with_name("emotion_presets.json")


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

    # -- the one record shape (history, dialogue roles, presets, the API body) -------------------

    def to_record(self) -> dict[str, Any]:
        """The spec as JSON. Audio is not included: whoever stores the record keeps the clip and
        adds its own reference under "audio"."""
        return {"mode": self.mode, "weight": self.weight, "use_random": self.use_random,
                "vector": list(self.vector) if self.vector is not None else None, "text": self.text}

    @classmethod
    def from_record(cls, record: Any, audio: object | None = None, audio_sr: int = 0) -> "EmotionSpec":
        """A spec from a record; ValueError("emotion...") when it is not one.

        Reads every shape written so far: history and dialogue records (`vector`; dialogue
        records had no `use_random`), a named preset (`{"preset": "angry", "weight": 0.8}`), and
        the user presets' `sliders` (slider positions: the WebUI bias rule applies to them, as on
        the Synthesize tab). The result is not range-checked: call validate().
        """
        if not isinstance(record, dict):
            raise ValueError(f"emotion must be an object, got {type(record).__name__}")
        if record.get("preset") is not None:
            extra = sorted(set(record) - {"preset", "weight", "use_random"})
            if extra:
                raise ValueError(f"emotion.{extra[0]} cannot be combined with emotion.preset")
            spec = preset_spec(record["preset"], record.get("weight"))
            return replace(spec, use_random=record.get("use_random", False))
        vector = record.get("vector")
        if vector is None and record.get("sliders") is not None and record.get("mode") == "vector":
            vector = normalize_webui_vector([_number(v, "emotion.sliders") for v in record["sliders"]])
        if isinstance(vector, dict):
            unknown = sorted(set(vector) - set(EMOTIONS))
            if unknown:
                raise ValueError(f"emotion.vector: unknown emotions {unknown}; use {', '.join(EMOTIONS)}")
            vector = [vector.get(name, 0.0) for name in EMOTIONS]
        if vector is not None and (isinstance(vector, (str, bytes)) or not hasattr(vector, "__len__")):
            raise ValueError(f"emotion.vector must be {len(EMOTIONS)} numbers, got {vector!r}")
        return cls(mode=record.get("mode", "same_as_voice"), weight=record.get("weight", DEFAULT_WEIGHT),
                   vector=tuple(vector) if vector is not None else None, text=record.get("text") or "",
                   audio=audio, audio_sr=audio_sr, use_random=record.get("use_random", False))


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field} must be numbers, got {value!r}")
    return float(value)


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


@lru_cache(maxsize=1)
def _builtin_presets() -> tuple[dict, ...]:
    presets = json.loads(BUILTIN_PRESETS_FILE.read_text(encoding="utf-8"))["presets"]
    for p in presets:
        unknown = set(p["vector"]) - set(EMOTIONS)
        if unknown:
            raise ValueError(f"emotion preset {p['id']!r} names unknown emotions {sorted(unknown)}")
        p["values"] = [float(p["vector"].get(e, 0.0)) for e in EMOTIONS]
        p["names"] = list(dict.fromkeys([p["id"], *p.get("names", ())]))
    return tuple(presets)


def builtin_presets() -> list[dict]:
    """The built-in presets: {id, en, zh, weight, vector {emotion: slider}, values [8 sliders], names}."""
    return [{**p, "vector": dict(p["vector"]), "values": list(p["values"]), "names": list(p["names"])}
            for p in _builtin_presets()]


def find_preset(name: object) -> dict | None:
    """The built-in preset called `name` (its id or one of its names, any case); None if none is."""
    if not isinstance(name, str):
        return None
    folded = _fold(name)
    for p in builtin_presets():
        if any(_fold(n) == folded for n in p["names"]):
            return p
    return None


def preset_spec(name: object, weight: object = None) -> EmotionSpec:
    """What a built-in preset tells the engine: its sliders through the WebUI rule, and its weight
    unless `weight` is given. ValueError("emotion.preset") for an unknown name."""
    preset = find_preset(name)
    if preset is None:
        known = ", ".join(p["id"] for p in _builtin_presets())
        raise ValueError(f"emotion.preset: unknown preset {str(name)[:40]!r}; known: {known}")
    return EmotionSpec(mode="vector", vector=normalize_webui_vector(preset["values"]),
                       weight=preset["weight"] if weight is None else weight)
