"""WSOLA speed change: the length follows 1/speed, the pitch stays."""

from __future__ import annotations

import numpy as np
import pytest

from index_tts.timestretch import time_stretch

SR = 22050


def voiced(seconds: float, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    return (0.3 * wave / np.abs(wave).max() * 32767).astype(np.int16)


def pitch_hz(samples: np.ndarray) -> float:
    """Autocorrelation pitch of the middle of a clip, searched in 60..400 Hz."""
    x = samples.astype(np.float64)
    x = x[len(x) // 4: len(x) // 4 + 4096]
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    lo, hi = SR // 400, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


@pytest.mark.parametrize("speed", [0.25, 0.5, 0.8, 1.25, 2.0, 4.0])
def test_duration_follows_speed_and_pitch_stays(speed):
    clip = voiced(2.0, 150.0)
    out = time_stretch(clip, SR, speed)
    assert out.dtype == np.int16
    assert len(out) == pytest.approx(len(clip) / speed, rel=0.01)
    assert pitch_hz(out) == pytest.approx(150.0, rel=0.02)
    # The check can tell: a plain resample to the same length moves the pitch by the speed factor.
    resampled = np.interp(np.arange(len(out)) * speed, np.arange(len(clip)), clip.astype(np.float64))
    if 150.0 * speed < 400 and 150.0 * speed > 60:
        assert pitch_hz(resampled) == pytest.approx(150.0 * speed, rel=0.03)
    assert np.abs(out.astype(np.float64)).max() > 0.5 * np.abs(clip.astype(np.float64)).max()


def test_speed_one_is_identity_and_bad_speed_is_refused():
    clip = voiced(0.5, 200.0)
    assert time_stretch(clip, SR, 1.0) is clip or np.array_equal(time_stretch(clip, SR, 1.0), clip)
    assert time_stretch(np.zeros(0, np.int16), SR, 2.0).size == 0
    with pytest.raises(ValueError, match="speed"):
        time_stretch(clip, SR, 5.0)


def test_float_input_keeps_its_dtype():
    clip = voiced(1.0, 120.0).astype(np.float32) / 32768
    out = time_stretch(clip, SR, 1.5)
    assert out.dtype == np.float32
    assert pitch_hz(out) == pytest.approx(120.0, rel=0.02)
