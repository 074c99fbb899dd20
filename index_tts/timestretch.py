"""Change the speed of speech without changing its pitch: WSOLA (waveform-similarity overlap-add).

Speech is cut into overlapping Hann-windowed frames. The output advances by a fixed hop; the input
advances by `speed` times that hop, so the result is 1/speed as long. Each next frame is taken
not exactly at its nominal input position but up to `tolerance` samples away, where it best matches
(cross-correlation) the natural continuation of the frame before it. That keeps the periods of the
voice in phase across frames, so pitch and timbre survive (Verhelst & Roelands, ICASSP 1993).

Pure numpy; no state.
"""

from __future__ import annotations

import numpy as np

MIN_SPEED, MAX_SPEED = 0.25, 4.0  # OpenAI's `speed` range
FRAME_S = 0.04      # 40 ms frames: several pitch periods even for a low voice
TOLERANCE_S = 0.012  # search +-12 ms: at least one period of any voice above ~85 Hz


def time_stretch(samples: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """int16 or float mono [N] -> same dtype [~N / speed], same pitch. speed 1 returns the input."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be in [{MIN_SPEED}, {MAX_SPEED}], got {speed!r}")
    samples = np.asarray(samples).reshape(-1)
    if speed == 1.0 or samples.size == 0:
        return samples
    x = samples.astype(np.float64)
    frame = max(2 * (int(FRAME_S * sample_rate) // 2), 16)
    hop_out = frame // 2                 # 50 % overlap: Hann windows then sum to a constant
    hop_in = hop_out * speed
    tolerance = max(int(TOLERANCE_S * sample_rate), 1)
    window = np.hanning(frame + 2)[1:-1]  # [frame], no zero end points

    target_len = int(round(x.size / speed))
    n_frames = target_len // hop_out + 1
    # Padding: frames may reach `tolerance` before the start and a frame past the end.
    pad = tolerance + frame
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad + int(hop_in) + frame)])

    out = np.zeros(n_frames * hop_out + frame)
    norm = np.zeros_like(out)
    previous = pad  # input start (in padded coordinates) of the frame chosen last
    for k in range(n_frames):
        nominal = pad + int(round(k * hop_in))
        if k == 0:
            start = nominal
        else:
            # What would follow the previous frame if the input were copied unchanged.
            continuation = padded[previous + hop_out: previous + hop_out + frame]
            lo = max(nominal - tolerance, 0)
            region = padded[lo: nominal + tolerance + frame]          # [frame + 2 tol]
            scores = np.correlate(region, continuation, mode="valid")  # [2 tol + 1]
            start = lo + int(np.argmax(scores))
        out[k * hop_out: k * hop_out + frame] += window * padded[start: start + frame]
        norm[k * hop_out: k * hop_out + frame] += window
        previous = start
    out = out[:target_len] / np.maximum(norm[:target_len], 1e-3)

    if samples.dtype.kind == "i":
        info = np.iinfo(samples.dtype)
        return np.clip(np.round(out), info.min, info.max).astype(samples.dtype)
    return out.astype(samples.dtype)
