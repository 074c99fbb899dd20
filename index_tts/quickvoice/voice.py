"""Reference-voice adaptation for the quick voice.

A reference recording is reduced to a `VoiceProfile`: its F0 median and spread, its long-term
average spectral envelope, and the prosody measures of the emotion-from-audio mode (speaking
rate, loudness). Users upload phone calls, rooms, clips with music under them, so every measure
is taken over *confidently voiced* frames only:

- F0 is tracked with WORLD harvest over 70-500 Hz (speaking voices; mains hum at 50/60 Hz and
  bass notes lie below the floor). dio, the faster tracker, locks onto hum and bass on real
  recordings; measured figures are in docs/quick-voice.md.
- A frame is confidently voiced when harvest gives it an F0 *and* the signal repeats at that
  period: normalised cross-correlation of one 30 ms window with the next period's >= 0.8. Noise,
  chords and the pauses filled by a music bed fall below that, a voice above it.
- Median and spread are robust: the median of log F0, and half the 16-84 % interquantile range
  (the standard deviation for a normal distribution, untouched by a few octave errors).

espeak's speech is then moved toward the profile:

- F0: log F0 is mapped so that its median and spread become the speaker's (mean/variance
  normalisation of log F0, the usual baseline in voice conversion).
- Timbre: formant frequencies scale roughly with the inverse of vocal-tract length, so the
  envelope's frequency axis is warped by one factor alpha (cf. Lee & Rose 1998; Eide & Gish
  1996). alpha is found by a grid search maximising the correlation between the speaker's
  average log envelope and espeak's, warped, over the telephone band (300-3400 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index_tts.quickvoice.prosody import FFT_SIZE, FRAME_PERIOD_MS, WorldFeatures, frequencies

SAMPLE_RATE = 22050        # profiles are measured at the quick voice's output rate
MAX_ANALYSIS_S = 30.0      # longer references add time, not information
MIN_VOICED_S = 0.25
REFERENCE_F0_RANGE_HZ = (70.0, 500.0)
MIN_PERIODICITY = 0.8
WARP_BAND_HZ = (300.0, 3400.0)
WARP_RANGE = (0.85, 1.2)   # adult voices; beyond this the envelope shift sounds like a cartoon
RANGE_RATIO_LIMITS = (0.5, 2.0)


class VoiceAnalysisError(ValueError):
    """The reference has too little voiced speech to measure."""


@dataclass(frozen=True)
class VoiceProfile:
    f0_median_hz: float
    log_f0_std: float          # robust spread of log F0 over voiced frames (natural log units)
    envelope: np.ndarray       # [FFT_SIZE//2 + 1] mean log power envelope of voiced frames
    syllable_rate: float       # energy peaks per second of speech (pauses excluded)
    level_db: float            # RMS of voiced frames, dBFS
    voiced_s: float


def analyse_voice(wav: np.ndarray, sr: int) -> VoiceProfile:
    """Profile a reference recording (float mono at any rate) from its confidently voiced frames."""
    import pyworld
    import soxr

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sr != SAMPLE_RATE:
        wav = soxr.resample(wav, sr, SAMPLE_RATE).astype(np.float32)
    wav = wav[: int(MAX_ANALYSIS_S * SAMPLE_RATE)]
    if wav.size < SAMPLE_RATE // 10 or not np.isfinite(wav).all() or np.abs(wav).max() < 1e-4:
        raise VoiceAnalysisError("the voice reference is empty or silent")
    x = wav.astype(np.float64)
    lo, hi = REFERENCE_F0_RANGE_HZ
    f0, t = pyworld.harvest(x, SAMPLE_RATE, f0_floor=lo, f0_ceil=hi, frame_period=FRAME_PERIOD_MS)
    confident = (f0 > 0) & (periodicity(x, f0) >= MIN_PERIODICITY)
    _require_voicing(confident, MIN_VOICED_S, "clearly voiced speech")
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE, fft_size=FFT_SIZE)
    return _profile([(f0, confident, sp, wav)])


def profile_from_features(
    feats: list[WorldFeatures], wavs: list[np.ndarray], min_voiced_s: float = MIN_VOICED_S
) -> VoiceProfile:
    """Profile already analysed clean speech (espeak's phrases at SAMPLE_RATE): every voiced
    frame counts, because these are the frames that `map_f0` moves."""
    _require_voicing(np.concatenate([f.f0 for f in feats]) > 0, min_voiced_s, "voiced speech")
    return _profile([(f.f0, f.f0 > 0, f.sp, w) for f, w in zip(feats, wavs)])


def periodicity(x: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """[T] normalised cross-correlation, per frame, of the 30 ms around the frame with the same
    span one F0 period later; 0 where f0 is 0. Near 1 for a voice, low for noise and chords."""
    hop = SAMPLE_RATE * FRAME_PERIOD_MS / 1000
    half = int(0.015 * SAMPLE_RATE)
    longest = int(SAMPLE_RATE / REFERENCE_F0_RANGE_HZ[0]) + 1
    padded = np.pad(x, (half, half + longest))
    out = np.zeros(len(f0))
    for i in np.flatnonzero(f0 > 0):
        start = int(round(i * hop))
        period = min(int(round(SAMPLE_RATE / f0[i])), longest)
        a = padded[start: start + 2 * half]
        b = padded[start + period: start + period + 2 * half]
        out[i] = np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b) + 1e-20)
    return out


def _require_voicing(voiced: np.ndarray, min_voiced_s: float, what: str) -> None:
    voiced_s = voiced.sum() * FRAME_PERIOD_MS / 1000
    if voiced_s < min_voiced_s or voiced_s == 0:
        raise VoiceAnalysisError(
            f"the voice reference has {voiced_s:.2f} s of {what}; at least {MIN_VOICED_S} s is "
            "needed (is it silent, noise, music or whispering?)"
        )


def _profile(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> VoiceProfile:
    """pieces: (f0 [T], voiced [T], sp [T, F], wav) per stretch of audio."""
    lf = np.log(np.concatenate([f0[v] for f0, v, _, _ in pieces]))
    q16, q50, q84 = np.percentile(lf, [16, 50, 84])
    envelope = np.mean(np.log(np.concatenate([sp[v] for _, v, sp, _ in pieces]) + 1e-16), axis=0)
    peaks = speech_s = 0.0
    powers = []
    for _, v, _, wav in pieces:
        n_peaks, seconds, power = _syllables_and_power(wav, v)
        peaks, speech_s = peaks + n_peaks, speech_s + seconds
        powers.append(power)
    power = np.concatenate(powers)
    return VoiceProfile(
        f0_median_hz=float(np.exp(q50)),
        log_f0_std=float((q84 - q16) / 2),
        envelope=envelope,
        syllable_rate=peaks / speech_s if speech_s > 0 else 0.0,
        level_db=float(10 * np.log10(np.mean(power))) if power.size else -120.0,
        voiced_s=float(lf.size * FRAME_PERIOD_MS / 1000),
    )


def _syllables_and_power(wav: np.ndarray, voiced: np.ndarray) -> tuple[int, float, np.ndarray]:
    """Syllable nuclei (energy peaks at voiced frames), seconds of speech (voiced frames and
    150 ms around them, so pauses do not count), and the power of voiced 10 ms frames.

    The energy is taken in 300-3000 Hz, where the vowels are and hum, bass and most pink
    noise are not."""
    from scipy import signal

    hop = SAMPLE_RATE // 100  # 10 ms
    n = len(wav) // hop
    if n < 3:
        return 0, 0.0, np.zeros(0)
    frames_per_hop = int(round(10 / FRAME_PERIOD_MS))  # 5 ms F0 frames per 10 ms
    v = np.zeros(n, bool)
    m = min(len(voiced) // frames_per_hop, n)
    v[:m] = voiced[: m * frames_per_hop].reshape(m, frames_per_hop).any(axis=1)
    power = np.mean(wav[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1)
    sos = signal.butter(2, [300, 3000], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    band = signal.sosfiltfilt(sos, wav.astype(np.float64))
    energy = np.mean(band[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12
    db = 10 * np.log10(np.convolve(energy, np.ones(5) / 5, mode="same"))
    speech = np.convolve(v, np.ones(31), mode="same") > 0
    # a peak: a voiced local maximum standing 4 dB above the lowest point since the previous
    # peak, at least 100 ms after it
    peaks, last, low = 0, -100, db[0]
    for i in range(1, n - 1):
        low = min(low, db[i])
        if v[i] and db[i] >= db[i - 1] and db[i] > db[i + 1] and db[i] - low > 4 and i - last >= 10:
            peaks, last, low = peaks + 1, i, db[i]
    return peaks, speech.sum() / 100, power[v]


# ---------------------------------------------------------------------------------------------
# Adaptation


def map_f0(f0: np.ndarray, source_log_median: float, source_log_std: float, target: VoiceProfile) -> np.ndarray:
    """Give voiced frames the speaker's log-F0 median and (bounded) spread."""
    voiced = f0 > 0
    lo, hi = RANGE_RATIO_LIMITS
    k = float(np.clip(target.log_f0_std / max(source_log_std, 1e-3), lo, hi))
    lf = np.log(np.where(voiced, f0, 1.0))
    mapped = np.log(target.f0_median_hz) + k * (lf - source_log_median)
    return np.where(voiced, np.exp(mapped), 0.0)


def estimate_warp(source_envelope: np.ndarray, target_envelope: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Factor alpha such that source(f / alpha) best matches target(f): alpha > 1 means the
    speaker's formants sit higher (shorter vocal tract) than espeak's. Compared over the
    telephone band, 300-3400 Hz, which every recording carries and which holds F1-F3; outside
    it a phone line has nothing, and noise or a bass bed decide the shape."""
    freqs = frequencies(sr)
    band = (freqs >= WARP_BAND_HZ[0]) & (freqs <= WARP_BAND_HZ[1])
    target = _detrend(target_envelope, freqs, band)
    best_alpha, best_corr = 1.0, -np.inf
    for alpha in np.exp(np.linspace(np.log(WARP_RANGE[0]), np.log(WARP_RANGE[1]), 41)):
        warped = _detrend(_warp_log_envelope(source_envelope, alpha, freqs), freqs, band)
        corr = float(np.corrcoef(warped, target)[0, 1])
        if corr > best_corr:
            best_alpha, best_corr = float(alpha), corr
    return best_alpha


def warp_envelope(sp: np.ndarray, alpha: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Warp every frame's envelope: new(f) = old(f / alpha)."""
    if alpha == 1.0:
        return sp
    freqs = frequencies(sr)
    src = np.clip(freqs / alpha, 0, freqs[-1])
    log_sp = np.log(sp + 1e-16)
    idx = np.clip(np.searchsorted(freqs, src) - 1, 0, len(freqs) - 2)
    frac = (src - freqs[idx]) / (freqs[idx + 1] - freqs[idx])
    return np.exp(log_sp[:, idx] * (1 - frac) + log_sp[:, idx + 1] * frac)


def _warp_log_envelope(log_env: np.ndarray, alpha: float, freqs: np.ndarray) -> np.ndarray:
    return np.interp(freqs / alpha, freqs, log_env)


def _detrend(log_env: np.ndarray, freqs: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The envelope in `band` less its straight-line fit in log frequency: the slope is the
    glottal source and the recording's tilt, what remains is the formant pattern."""
    x = np.log(np.maximum(freqs[band], 50.0))
    slope, intercept = np.polyfit(x, log_env[band], 1)
    return log_env[band] - (slope * x + intercept)


def adapt(
    feats: list[WorldFeatures], source: VoiceProfile, target: VoiceProfile
) -> tuple[list[WorldFeatures], float]:
    """Move espeak's phrases (`feats`, profiled together as `source`) toward the speaker.
    Returns the adapted features and the envelope warp factor used."""
    alpha = estimate_warp(source.envelope, target.envelope)
    src_log_median = float(np.log(source.f0_median_hz))
    out = [
        WorldFeatures(
            map_f0(f.f0, src_log_median, source.log_f0_std, target),
            warp_envelope(f.sp, alpha, f.sr),
            f.ap,
            f.sr,
        )
        for f in feats
    ]
    return out, alpha
