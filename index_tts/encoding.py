"""Encode finished speech (int16 mono) into the formats the studio offers.

libsndfile (>= 1.1, inside the `soundfile` wheel) writes all of them, so there is no ffmpeg
dependency. Opus only exists at 8/12/16/24/48 kHz, so it is resampled to 24 kHz; every other
format keeps the engine's rate. "pcm" is raw little-endian 16-bit samples, as OpenAI's API sends.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr


@dataclass(frozen=True)
class AudioFormat:
    name: str
    suffix: str
    media_type: str
    container: str | None      # soundfile's format name; None for raw PCM
    subtype: str | None
    sample_rate: int | None    # forced rate, or None to keep the input's


FORMATS: dict[str, AudioFormat] = {f.name: f for f in (
    AudioFormat("wav", ".wav", "audio/wav", "WAV", "PCM_16", None),
    AudioFormat("flac", ".flac", "audio/flac", "FLAC", "PCM_16", None),
    AudioFormat("mp3", ".mp3", "audio/mpeg", "MP3", "MPEG_LAYER_III", None),
    AudioFormat("ogg", ".ogg", "audio/ogg", "OGG", "VORBIS", None),
    AudioFormat("opus", ".opus", "audio/ogg; codecs=opus", "OGG", "OPUS", 24000),
    AudioFormat("pcm", ".pcm", "audio/pcm", None, None, None),
)}
FORMAT_NAMES = tuple(FORMATS)


def audio_format(name: object) -> AudioFormat:
    """The format called `name` (case-insensitive); ValueError listing the choices otherwise."""
    if isinstance(name, str) and name.strip().lower() in FORMATS:
        return FORMATS[name.strip().lower()]
    raise ValueError(f"must be one of {', '.join(FORMAT_NAMES)}, got {name!r}")


def encode(pcm: np.ndarray, sample_rate: int, fmt: str | AudioFormat) -> bytes:
    """int16 mono samples -> the bytes of a file in `fmt`."""
    fmt = fmt if isinstance(fmt, AudioFormat) else audio_format(fmt)
    pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
    if fmt.container is None:
        return pcm.astype("<i2").tobytes()
    if fmt.sample_rate and fmt.sample_rate != sample_rate:
        resampled = soxr.resample(pcm.astype(np.float32) / 32768.0, sample_rate, fmt.sample_rate)
        pcm = (np.clip(resampled, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)
        sample_rate = fmt.sample_rate
    buffer = io.BytesIO()
    sf.write(buffer, pcm, sample_rate, format=fmt.container, subtype=fmt.subtype)
    return buffer.getvalue()
