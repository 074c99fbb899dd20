"""Uploaded audio: decoding a clip (file or samples) into float32 mono, checked like a voice."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from index_tts.service.checks import Limits
from index_tts.service.errors import ValidationError


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

