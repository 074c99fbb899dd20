"""Emotion rendering for the quick voice: rule-based prosody applied with the WORLD vocoder.

Speech is analysed into WORLD features (F0 contour, spectral envelope, aperiodicity; Morise et
al. 2016), the features are edited by a `ProsodyRule`, and the result is resynthesised. Every
emotion is one row of `RULES`; a vector of emotion weights blends the rows (see `blend`).

The rows quantify the verbal rules of Murray & Arnott (1993, Table I) with one fixed scale, so
that "slightly", "much" and "very much" mean the same thing in every row:

    pitch level  slightly ±1.5 st, much ±3 st, very much ±5 st
    pitch range  slightly ×1.2 / ×0.83, much ×1.5
    rate         slightly ×1.1 / ×0.9, much ×1.25, very much ×0.7
    intensity    higher +3 dB, lower -3 dB

Murray & Arnott have no surprise, melancholy or calm; those rows are ours, described in
docs/quick-voice.md with the sources they lean on (Cahn 1990; Schröder 2001).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from index_tts.emotion import EMOTIONS

FRAME_PERIOD_MS = 5.0
F0_FLOOR_HZ = 50.0
F0_CEIL_HZ = 800.0
FFT_SIZE = 1024  # cheaptrick's choice for a 70 Hz floor at 22.05 kHz; fixed so envelopes compare


@dataclass(frozen=True)
class ProsodyRule:
    """How one emotion departs from neutral speech. The identity rule changes nothing."""

    pitch_st: float = 0.0      # F0 level shift, semitones
    range_scale: float = 1.0   # F0 excursion around the median, as a factor on log F0
    rate: float = 1.0          # tempo factor; > 1 is faster (shorter)
    gain_db: float = 0.0       # loudness relative to neutral
    tilt_db_oct: float = 0.0   # spectral slope above 500 Hz: + tense/bright, - lax/soft
    breath: float = 0.0        # 0..1, aperiodic energy mixed into voiced frames above 1 kHz
    jitter: float = 0.0        # slow random F0 wobble, relative (irregular voicing)
    final_st: float = 0.0      # terminal inflection reached at the end of each phrase, semitones


NEUTRAL = ProsodyRule()

# Multiplicative fields blend in the log domain, the others linearly.
_MULTIPLICATIVE = ("range_scale", "rate")

# One row per emotion, EMOTIONS order. Sources: Murray & Arnott 1993 Table I (happy, angry, sad,
# afraid, disgusted); Cahn 1990 and Schröder 2001 (surprised); our own, reasoned in the docs
# (melancholic, calm).
RULES: dict[str, ProsodyRule] = {
    # M&A joy: rate faster or slower, pitch much higher, range much wider, intensity higher,
    # breathy/blaring voice, smooth upward inflections.
    "happy": ProsodyRule(pitch_st=3.0, range_scale=1.5, rate=1.1, gain_db=3.0, tilt_db_oct=1.0, breath=0.1, final_st=1.0),
    # M&A anger: slightly faster, pitch very much higher, range much wider, intensity higher,
    # breathy chest tone, abrupt changes on stressed syllables, tense articulation.
    "angry": ProsodyRule(pitch_st=5.0, range_scale=1.5, rate=1.1, gain_db=3.0, tilt_db_oct=3.0, breath=0.1),
    # M&A sadness: slightly slower, slightly lower, slightly narrower, intensity lower,
    # resonant voice, downward inflections.
    "sad": ProsodyRule(pitch_st=-1.5, range_scale=0.83, rate=0.9, gain_db=-3.0, tilt_db_oct=-2.0, final_st=-1.5),
    # M&A fear: much faster, pitch very much higher, range much wider, intensity normal,
    # irregular voicing, precise articulation.
    "afraid": ProsodyRule(pitch_st=5.0, range_scale=1.5, rate=1.25, tilt_db_oct=1.0, jitter=0.04),
    # M&A disgust: very much slower, very much lower, slightly wider, intensity lower,
    # grumbled chest tone, wide downward terminal inflections.
    "disgusted": ProsodyRule(pitch_st=-5.0, range_scale=1.2, rate=0.7, gain_db=-3.0, tilt_db_oct=-2.0, jitter=0.01, final_st=-3.0),
    # Ours (after M&A sadness, Schröder's boredom): slower, lower, flat, soft and breathy.
    "melancholic": ProsodyRule(pitch_st=-1.5, range_scale=0.7, rate=0.85, gain_db=-2.0, tilt_db_oct=-3.0, breath=0.2, final_st=-1.0),
    # Cahn 1990 / Schröder 2001 surprise: higher, much wider, rising end, slightly faster.
    "surprised": ProsodyRule(pitch_st=4.0, range_scale=1.5, rate=1.1, gain_db=2.0, final_st=3.0),
    # Ours: relaxed neutral; a little narrower and softer, same tempo and level.
    "calm": ProsodyRule(range_scale=0.9, gain_db=-1.0, tilt_db_oct=-1.0),
}
assert tuple(RULES) == EMOTIONS


def blend(weights: tuple[float, ...] | list[float], alpha: float = 1.0) -> ProsodyRule:
    """Mix the emotion rows by `weights` (EMOTIONS order), then scale the mix by `alpha`.

    Weights summing above 1 are normalised to 1, so two full emotions give their average rather
    than an exaggerated sum; below 1 the missing share is neutral. alpha = 0 is neutral.
    """
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    if w.shape != (len(EMOTIONS),):
        raise ValueError(f"need {len(EMOTIONS)} emotion weights, got {w.shape}")
    if w.sum() > 1.0:
        w = w / w.sum()
    w = w * min(max(alpha, 0.0), 1.0)
    values = {}
    for f in fields(ProsodyRule):
        column = np.array([getattr(RULES[e], f.name) for e in EMOTIONS])
        if f.name in _MULTIPLICATIVE:
            values[f.name] = float(np.exp(w @ np.log(column)))
        else:
            values[f.name] = float(w @ column)
    return ProsodyRule(**values)


def scale(rule: ProsodyRule, amount: float) -> ProsodyRule:
    """Move `rule` toward neutral: amount 1 keeps it, 0 gives NEUTRAL."""
    values = {}
    for f in fields(ProsodyRule):
        v = getattr(rule, f.name)
        values[f.name] = v ** amount if f.name in _MULTIPLICATIVE else v * amount
    return replace(rule, **values)


# ---------------------------------------------------------------------------------------------
# WORLD analysis / resynthesis


@dataclass
class WorldFeatures:
    f0: np.ndarray   # [T] Hz, 0 where unvoiced; one frame per FRAME_PERIOD_MS
    sp: np.ndarray   # [T, FFT_SIZE//2 + 1] power spectral envelope
    ap: np.ndarray   # [T, FFT_SIZE//2 + 1] aperiodicity in [0, 1]
    sr: int


def analyse(wav: np.ndarray, sr: int) -> WorldFeatures:
    """dio + stonemask for F0 (harvest is ~6x slower here), cheaptrick, d4c."""
    import pyworld

    x = np.ascontiguousarray(wav, dtype=np.float64)
    f0, t = pyworld.dio(x, sr, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp = pyworld.cheaptrick(x, f0, t, sr, fft_size=FFT_SIZE)
    ap = pyworld.d4c(x, f0, t, sr, fft_size=FFT_SIZE)
    return WorldFeatures(f0, sp, ap, sr)


def resynthesize(feats: WorldFeatures) -> np.ndarray:
    import pyworld

    y = pyworld.synthesize(
        np.ascontiguousarray(feats.f0), np.ascontiguousarray(feats.sp), np.ascontiguousarray(feats.ap),
        feats.sr, FRAME_PERIOD_MS,
    )
    return y.astype(np.float32)


def frequencies(sr: int) -> np.ndarray:
    """Centre frequency (Hz) of each envelope bin."""
    return np.arange(FFT_SIZE // 2 + 1) * sr / FFT_SIZE


# ---------------------------------------------------------------------------------------------
# Applying a rule


def apply(feats: WorldFeatures, rule: ProsodyRule, center_hz: float, rng: np.random.Generator) -> WorldFeatures:
    """Edit one phrase's features by `rule`. `center_hz` is the F0 the range scales around
    (the speaker's median), so the level shift and range change act independently.
    Loudness (`gain_db`) is left to `set_loudness`, applied on the joined waveform."""
    f0 = _edit_f0(feats.f0, rule, center_hz, rng)
    freqs = frequencies(feats.sr)
    sp = feats.sp
    if rule.tilt_db_oct:
        octaves_above = np.log2(np.maximum(freqs, 500.0) / 500.0)
        sp = sp * 10.0 ** (rule.tilt_db_oct * octaves_above / 10.0)[None, :]
    ap = feats.ap
    if rule.breath > 0:
        ramp = np.clip((freqs - 1000.0) / 3000.0, 0.0, 1.0)[None, :]
        voiced = (f0 > 0)[:, None]
        ap = np.where(voiced, ap + min(rule.breath, 1.0) * ramp * (1.0 - ap), ap)
    out = WorldFeatures(f0, sp, ap, feats.sr)
    if rule.rate != 1.0:
        out = time_scale(out, rule.rate)
    return out


def _edit_f0(f0: np.ndarray, rule: ProsodyRule, center_hz: float, rng: np.random.Generator) -> np.ndarray:
    voiced = f0 > 0
    if not voiced.any():
        return f0.copy()
    center = math.log(center_hz)
    lf = np.log(np.where(voiced, f0, 1.0))
    lf = center + rule.range_scale * (lf - center) + rule.pitch_st * math.log(2) / 12
    if rule.final_st:
        # ramp in over the last 0.5 s of voicing of the phrase
        idx = np.flatnonzero(voiced)
        n = min(len(idx), int(500 / FRAME_PERIOD_MS))
        ramp = np.zeros(len(f0))
        ramp[idx[-n:]] = np.linspace(0.0, 1.0, n)
        lf = lf + ramp * rule.final_st * math.log(2) / 12
    if rule.jitter:
        # white noise smoothed over ~25 ms: audible wobble without clicks
        noise = np.convolve(rng.standard_normal(len(f0)), np.ones(5) / 5, mode="same")
        lf = lf + rule.jitter * noise * math.sqrt(5)
    return np.where(voiced, np.exp(lf), 0.0)


def scaled_frames(n_in: int, rate: float) -> int:
    """Frames after `time_scale(feats, rate)` of n_in frames."""
    return max(int(round(n_in / rate)), 1)


def synthesized_samples(n_frames: int, sr: int) -> int:
    """Samples `resynthesize` returns for n_frames frames (WORLD: frames x period, truncated)."""
    return int(n_frames * FRAME_PERIOD_MS * sr / 1000)


def time_scale(feats: WorldFeatures, rate: float) -> WorldFeatures:
    """Change tempo by resampling the frame sequence. Envelopes interpolate in the log domain;
    F0 interpolates between voiced neighbours and keeps the nearest frame's voicing."""
    n_in = len(feats.f0)
    n_out = scaled_frames(n_in, rate)
    pos = np.minimum(np.arange(n_out) * rate, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo)[:, None]
    sp = np.exp((1 - frac) * np.log(feats.sp[lo] + 1e-16) + frac * np.log(feats.sp[hi] + 1e-16))
    ap = (1 - frac) * feats.ap[lo] + frac * feats.ap[hi]
    nearest = np.round(pos).astype(int)
    f0 = feats.f0[nearest].copy()
    both = (feats.f0[lo] > 0) & (feats.f0[hi] > 0) & (f0 > 0)
    f0[both] = np.exp((1 - frac[both, 0]) * np.log(feats.f0[lo][both]) + frac[both, 0] * np.log(feats.f0[hi][both]))
    return WorldFeatures(f0, sp, ap, feats.sr)


TARGET_RMS_DBFS = -22.0  # leaves ~19 dB of crest factor before the limiter at +3 dB gain


def set_loudness(wav: np.ndarray, gain_db: float = 0.0) -> np.ndarray:
    """Bring speech to TARGET_RMS_DBFS + gain_db (RMS over frames within 40 dB of the loudest,
    so pauses do not count), then scale down if the peak would clip."""
    if wav.size == 0:
        return wav
    frame = 441
    n = len(wav) // frame
    if n == 0:
        rms = float(np.sqrt(np.mean(wav**2)))
    else:
        energies = np.mean(wav[: n * frame].reshape(n, frame) ** 2, axis=1)
        active = energies > energies.max() * 1e-4
        rms = float(np.sqrt(np.mean(energies[active])))
    if rms <= 1e-9:
        return wav
    out = wav * (10 ** ((TARGET_RMS_DBFS + gain_db) / 20) / rms)
    peak = float(np.abs(out).max())
    if peak > 0.97:
        out = out * (0.97 / peak)
    return out.astype(np.float32)
