"""Pure helpers of the creator pages (no widgets): emotion choices, the waveform picture, table rows.

Kept apart from app.py so they can be tested without a browser.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from index_tts.service import DEFAULT_WEIGHT, EmotionSpec

VOICE_DEFAULT = "voice_default"
SAME_AS_VOICE = "same"
WAVE_WIDTH, WAVE_HEIGHT = 900, 140
# One tint per emotion label's first word, so equal emotions look equal along the waveform.
TINTS = {"happy": "#f5c542", "angry": "#e4572e", "sad": "#4a7fd4", "afraid": "#8e6bbf", "disgusted": "#6a994e",
         "melancholic": "#5d737e", "surprised": "#f28cb1", "calm": "#69b3a2"}


def emotion_choices(builtin: list[dict], user: list[dict], lang: str, same_label: str, default_label: str | None = None):
    """(label, value) pairs for an emotion dropdown: the voice's default (when offered), same as
    the voice, the built-in presets, then the user's presets."""
    choices = [(default_label, VOICE_DEFAULT)] if default_label else []
    choices.append((same_label, SAME_AS_VOICE))
    choices += [(f"{p['en']} · {p['zh']}", f"builtin:{p['id']}") for p in builtin]
    choices += [(f"★ {p['name']}", f"user:{p['name']}") for p in user]
    return choices


def preset_record(choice: str, builtin: list[dict], user: list[dict]) -> dict | None:
    """The emotion record (slider positions under "sliders") a dropdown choice names; None if unknown."""
    if choice == SAME_AS_VOICE:
        return {"mode": "same_as_voice", "weight": DEFAULT_WEIGHT, "sliders": [0.0] * 8, "text": ""}
    kind, _, key = (choice or "").partition(":")
    if kind == "builtin":
        for p in builtin:
            if p["id"] == key:
                return {"mode": "vector", "weight": float(p["weight"]), "sliders": list(p["values"]), "text": ""}
    if kind == "user":
        for p in user:
            if p["name"] == key:
                return p
    return None


def emotion_from_choice(choice: str, builtin: list[dict], user: list[dict], voice_default: object = None) -> EmotionSpec:
    """The EmotionSpec a dropdown choice means (sliders as on the Synthesize tab: the WebUI bias
    rule applies). The voice's default is a stored choice string."""
    if choice == VOICE_DEFAULT:
        choice = voice_default if isinstance(voice_default, str) else SAME_AS_VOICE
    record = preset_record(choice, builtin, user)
    return EmotionSpec() if record is None else EmotionSpec.from_record(record)


def choice_label(choice: object, builtin: list[dict], lang: str) -> str:
    """A stored emotion choice, in words ("-" when none)."""
    if not isinstance(choice, str) or choice in ("", SAME_AS_VOICE):
        return "-"
    kind, _, key = choice.partition(":")
    if kind == "builtin":
        for p in builtin:
            if p["id"] == key:
                return p["zh"] if lang == "zh" else p["en"]
    return key or choice


def waveform_svg(audio_path: str | Path, timeline: list, label: str) -> str:
    """An SVG of the result: the min/max envelope, with a shaded band per segment carrying its
    emotion (title and data-emotion), so the emotions are visible along the audio."""
    audio, rate = sf.read(str(audio_path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    duration = max(len(mono) / rate, 1e-6)
    columns = np.array_split(mono, WAVE_WIDTH) if len(mono) >= WAVE_WIDTH else [mono]
    mid = WAVE_HEIGHT / 2
    top = [mid - (float(c.max()) if c.size else 0.0) * (mid - 4) for c in columns]
    bottom = [mid - (float(c.min()) if c.size else 0.0) * (mid - 4) for c in columns]
    step = WAVE_WIDTH / max(len(columns), 1)
    outline = [f"{i * step:.1f},{y:.1f}" for i, y in enumerate(top)]
    outline += [f"{i * step:.1f},{y:.1f}" for i, y in reversed(list(enumerate(bottom)))]
    bands = []
    for segment in timeline:
        x0 = WAVE_WIDTH * segment.start_s / duration
        width = max(WAVE_WIDTH * (segment.end_s - segment.start_s) / duration, 1.0)
        tint = TINTS.get(segment.emotion.split(" ")[0], "#bbbbbb")
        emotion = html.escape(segment.emotion)
        bands.append(f'<rect class="segment" data-emotion="{emotion}" x="{x0:.1f}" y="0" width="{width:.1f}" '
                     f'height="{WAVE_HEIGHT}" fill="{tint}" fill-opacity="0.25"><title>{html.escape(segment.text)} · '
                     f'{emotion}</title></rect>'
                     f'<text x="{x0 + 3:.1f}" y="12" font-size="11" fill="#333">{html.escape(segment.emotion.split(" (")[0])}</text>')
    return (f'<svg role="img" aria-label="{html.escape(label)}" viewBox="0 0 {WAVE_WIDTH} {WAVE_HEIGHT}" '
            f'width="100%" height="{WAVE_HEIGHT}" xmlns="http://www.w3.org/2000/svg" style="background:#fafafa">'
            f'{"".join(bands)}<polygon points="{" ".join(outline)}" fill="#3b5b92"/></svg>')


def history_rows(records: list[dict], kind_label) -> list[list]:
    """Table rows for history records (newest first)."""
    rows = []
    for r in records:
        when = str(r.get("created_at", ""))
        try:
            when = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
        emotions = ", ".join(dict.fromkeys(s.get("emotion", "").split(" (")[0] for s in r.get("segments", [])))
        rows.append([when, kind_label(r.get("kind", "speech")), r.get("title", ""), r.get("duration_s", 0),
                     r.get("format", ""), emotions, r.get("id", "")])
    return rows
