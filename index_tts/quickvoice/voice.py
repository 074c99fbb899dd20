"""Reference-voice adaptation for the quick voice.

A reference recording is reduced to a `VoiceProfile`: its F0 median and spread (WORLD dio +
stonemask), its long-term average spectral envelope, and a few prosody measures used by the
emotion-from-audio mode (speaking rate, loudness). espeak's speech is then moved toward it:

- F0: log F0 is mapped so that its median and standard deviation become the speaker's
  (mean/variance normalisation of log F0, the usual baseline in voice conversion).
- Timbre: formant frequencies scale roughly with the inverse of vocal-tract length, so the
  envelope's frequency axis is warped by one factor alpha (cf. Lee & Rose 1998; Eide & Gish
  1996). alpha is found by a grid search maximising the correlation between the speaker's
  average log envelope and espeak's, warped, over 250-5000 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index_tts.quickvoice.prosody import FRAME_PERIOD_MS, WorldFeatures, analyse, frequencies

SAMPLE_RATE = 22050        # profiles are measured at the quick voice's output rate
MAX_ANALYSIS_S = 30.0      # longer references add time, not information
MIN_VOICED_S = 0.25
WARP_RANGE = (0.85, 1.2)   # adult voices; beyond this the envelope shift sounds like a cartoon
RANGE_RATIO_LIMITS = (0.5, 2.0)


class VoiceAnalysisError(ValueError):
    """The reference has too little voiced speech to measure."""


@dataclass(frozen=True)
class VoiceProfile:
    f0_median_hz: float
    log_f0_std: float          # spread of log F0 over voiced frames (natural log units)
    envelope: np.ndarray       # [FFT_SIZE//2 + 1] mean log power envelope of voiced frames
    syllable_rate: float       # energy peaks per second of active speech
    level_db: float            # RMS of active frames, dBFS
    voiced_s: float


def profile_from_features(
    feats: list[WorldFeatures], wavs: list[np.ndarray], min_voiced_s: float = MIN_VOICED_S
) -> VoiceProfile:
    """Measure a profile from already analysed audio (one or more pieces at SAMPLE_RATE)."""
    f0 = np.concatenate([f.f0 for f in feats])
    voiced = f0 > 0
    voiced_s = voiced.sum() * FRAME_PERIOD_MS / 1000
    if voiced_s < min_voiced_s or voiced_s == 0:
        raise VoiceAnalysisError(
            f"the voice reference has {voiced_s:.2f} s of voiced speech; at least {MIN_VOICED_S} s "
            "is needed (is it silent, noise or whispering?)"
        )
    lf = np.log(f0[voiced])
    sp = np.concatenate([f.sp for f in feats])[voiced]
    wav = np.concatenate(wavs)
    rate, level = _rate_and_level(wav)
    return VoiceProfile(
        f0_median_hz=float(np.exp(np.median(lf))),
        log_f0_std=float(np.std(lf)),
        envelope=np.mean(np.log(sp + 1e-16), axis=0),
        syllable_rate=rate,
        level_db=level,
        voiced_s=float(voiced_s),
    )


def analyse_voice(wav: np.ndarray, sr: int) -> VoiceProfile:
    """Profile a reference recording (float mono at any rate)."""
    import soxr

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sr != SAMPLE_RATE:
        wav = soxr.resample(wav, sr, SAMPLE_RATE).astype(np.float32)
    wav = wav[: int(MAX_ANALYSIS_S * SAMPLE_RATE)]
    if wav.size < SAMPLE_RATE // 10 or not np.isfinite(wav).all() or np.abs(wav).max() < 1e-4:
        raise VoiceAnalysisError("the voice reference is empty or silent")
    return profile_from_features([analyse(wav, SAMPLE_RATE)], [wav])


def _rate_and_level(wav: np.ndarray) -> tuple[float, float]:
    """Speaking rate as energy peaks (≈ syllable nuclei) per active second, and active level."""
    hop = SAMPLE_RATE // 100  # 10 ms
    n = len(wav) // hop
    if n < 3:
        return 0.0, -120.0
    energy = np.mean(wav[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12
    db = 10 * np.log10(np.convolve(energy, np.ones(5) / 5, mode="same"))
    active = db > db.max() - 35
    level = float(10 * np.log10(np.mean(energy[active])))
    # a peak: a local maximum standing 4 dB above the lowest point since the previous peak,
    # at least 100 ms after it
    peaks, last, low = 0, -100, db[0]
    for i in range(1, n - 1):
        low = min(low, db[i])
        if active[i] and db[i] >= db[i - 1] and db[i] > db[i + 1] and db[i] - low > 4 and i - last >= 10:
            peaks, last, low = peaks + 1, i, db[i]
    active_s = active.sum() / 100
    return (peaks / active_s if active_s > 0 else 0.0), level


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
    speaker's formants sit higher (shorter vocal tract) than espeak's."""
    freqs = frequencies(sr)
    band = (freqs >= 250) & (freqs <= 5000)
    target = _detrend(target_envelope, freqs)[band]
    best_alpha, best_corr = 1.0, -np.inf
    for alpha in np.exp(np.linspace(np.log(WARP_RANGE[0]), np.log(WARP_RANGE[1]), 41)):
        warped = _detrend(_warp_log_envelope(source_envelope, alpha, freqs), freqs)[band]
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


def _detrend(log_env: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Remove the overall slope (glottal source and recording tilt), keep the formant pattern."""
    x = np.log(np.maximum(freqs, 50.0))
    slope, intercept = np.polyfit(x, log_env, 1)
    return log_env - (slope * x + intercept)


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
