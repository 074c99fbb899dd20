"""The user's own emotion presets: emotion_presets.json (mode, 8 slider values, weight, text)."""

from __future__ import annotations

import unicodedata
from typing import Any

from index_tts.storage.base import MAX_NAME_CHARS, JsonDocumentStore

EMOTION_PRESET_FORMAT_VERSION = 1
MAX_EMOTION_PRESETS = 100
USER_PRESET_MODES = ("same_as_voice", "vector", "text")   # audio mode needs a clip; presets keep none


class EmotionPresetStore(JsonDocumentStore):
    """Shown next to the built-in list. Saving a name that exists replaces it (names match
    case-insensitively)."""

    WHAT = "emotion presets"
    KEY = "presets"
    FORMAT_VERSION = EMOTION_PRESET_FORMAT_VERSION

    def _parse(self, document: Any) -> list[dict[str, Any]]:
        return [self._check(p) for p in document["presets"]]

    def list(self) -> list[dict[str, Any]]:
        return self._read([])

    @staticmethod
    def _check(preset: Any) -> dict[str, Any]:
        if not isinstance(preset, dict):
            raise ValueError("a preset must be an object")
        name = preset.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_CHARS \
                or any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
            raise ValueError(f"name must be 1 to {MAX_NAME_CHARS} characters of text, got {name!r}")
        mode = preset.get("mode")
        if mode not in USER_PRESET_MODES:
            raise ValueError(f"mode must be one of {', '.join(USER_PRESET_MODES)} (an emotion clip cannot be kept "
                             f"in a preset), got {mode!r}")
        sliders = preset.get("sliders")
        if not isinstance(sliders, (list, tuple)) or len(sliders) != 8 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in sliders):
            raise ValueError("sliders must be 8 numbers in [0, 1]")
        weight = preset.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ValueError(f"weight must be a number in [0, 1], got {weight!r}")
        text = preset.get("text") or ""
        if not isinstance(text, str) or len(text) > 1000:
            raise ValueError("text must be at most 1000 characters")
        return {"name": name.strip(), "mode": mode, "sliders": [float(v) for v in sliders], "weight": float(weight),
                "text": text, "use_random": bool(preset.get("use_random", False))}

    def save(self, preset: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Add or replace a preset; returns it and whether one was replaced. ValueError names the field."""
        preset = self._check(preset)
        with self._lock:
            presets = self.list()
            kept = [p for p in presets if p["name"].casefold() != preset["name"].casefold()]
            replaced = len(kept) != len(presets)
            if not replaced and len(kept) >= MAX_EMOTION_PRESETS:
                raise ValueError(f"name: there are already {MAX_EMOTION_PRESETS} presets; delete one first")
            self._write(kept + [preset])
        return preset, replaced

    def delete(self, name: str) -> bool:
        with self._lock:
            presets = self.list()
            kept = [p for p in presets if not isinstance(name, str) or p["name"].casefold() != name.strip().casefold()]
            if len(kept) == len(presets):
                return False
            self._write(kept)
        return True
