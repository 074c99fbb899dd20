"""The limits of a request, and the checks every text, name and number passes at the service
boundary, so that the UI and the HTTP API refuse the same bad input with the same message.

Bad input is refused, never repaired: control and format characters (NUL, escape, zero-width
and direction marks...), lone surrogates (what invalid UTF-8 or a "\\ud800" JSON escape decode
to), overlong strings, non-finite or out-of-range numbers and wrong types each raise a
ValidationError naming the field.
"""

from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass
from typing import Union

from index_tts.encoding import AudioFormat, audio_format
from index_tts.service.errors import ValidationError

# A voice: a file path, or (sample_rate, samples) as Gradio's numpy audio gives it.
AudioInput = Union[str, os.PathLike, tuple]

MAX_NAME_INPUT_CHARS = 200   # a typed name; the stored name is shortened further (storage.MAX_NAME_CHARS)
LINE_BREAKS = "\n\r\t"       # allowed in text that may span lines


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


def bad_character(text: str, allowed: str = "") -> str | None:
    """A description of the first character no input may hold, or None when all are fine."""
    for index, char in enumerate(text):
        if char in allowed:
            continue
        category = unicodedata.category(char)
        if category == "Cs":
            return f"an invalid character (a lone surrogate, U+{ord(char):04X}) at position {index + 1}"
        if category in ("Cc", "Cf"):
            kind = "control" if category == "Cc" else "invisible format"
            return f"a {kind} character (U+{ord(char):04X}) at position {index + 1}"
    return None


def check_text(value: object, field: str, max_chars: int, *, multiline: bool = True, required: bool = False) -> str:
    """A text field as given (not stripped); ValidationError(field) for the wrong type, a bad
    character, more than `max_chars` characters, or (when `required`) nothing but spaces."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise ValidationError(field, f"is too long ({len(value)} characters; at most {max_chars})")
    problem = bad_character(value, LINE_BREAKS if multiline else "")
    if problem:
        raise ValidationError(field, f"contains {problem}")
    if required and not value.strip():
        raise ValidationError(field, "is empty")
    return value


def check_name(value: object, field: str = "name") -> str:
    """A user-typed name (voice, preset, history id...): one line of text, not empty, not huge.
    Other characters a folder name cannot hold are replaced by the store, as documented."""
    return check_text(value, field, MAX_NAME_INPUT_CHARS, multiline=False, required=True)


def check_number(value: object, field: str, lo: float, hi: float, *, whole: bool = False) -> float:
    """A finite number in [lo, hi] (a whole one when `whole`); true/false is not a number."""
    what = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"must be {what} in [{lo:g}, {hi:g}], got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:   # an int too large for a float
        finite = False
    if not finite or not lo <= value <= hi or (whole and value != int(value)):
        shown = f"a number of {value.bit_length()} bits" if isinstance(value, int) and not finite else repr(value)[:40]
        raise ValidationError(field, f"must be {what} in [{lo:g}, {hi:g}], got {shown}")
    return value


def check_file_format(name: object, field: str = "output_format") -> AudioFormat:
    """An audio format that makes a file (dialogue lines, dubbing cues, chapters): not raw pcm."""
    try:
        fmt = audio_format(name)
    except ValueError as e:
        raise ValidationError(field, str(e)) from e
    if fmt.container is None:
        raise ValidationError(field, "raw pcm makes no file; choose wav, flac, mp3, ogg or opus")
    return fmt
