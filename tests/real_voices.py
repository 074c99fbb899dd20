"""Real and degraded voice references for the quick-voice tests.

Two voices:
  alsa    a real female voice: the eight channel announcements in Debian's `alsa-utils`
          (/usr/share/sounds/alsa/*.wav, 48 kHz studio recordings), joined with short pauses.
  espeak  a lower voice: espeak-ng's US English male voice reading two sentences.

Each is degraded the ways users' uploads are: white and pink noise at 20 and 10 dB SNR, mains hum,
a low music bed, a telephone channel, a room, and a short excerpt. Every degradation is seeded, so
a case is the same audio on every run. run_tests.sh installs alsa-utils.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

SR = 22050
ALSA_DIR = Path("/usr/share/sounds/alsa")
ALSA_SPEECH = ["Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
               "Side_Left", "Side_Right"]
ALSA_NOISE = ALSA_DIR / "Noise.wav"   # the package's own noise burst: a reference with no voice
ESPEAK_TEXT = "Please leave your message after the tone. I will call you back as soon as I can."

DEGRADATIONS = ["clean", "white20", "white10", "pink20", "pink10", "hum50", "hum60", "music15",
                "phone8k", "reverb", "excerpt3s"]


def read(path: Path) -> np.ndarray:
    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(wav.mean(axis=1), sr, SR).astype(np.float32)


def alsa_voice() -> np.ndarray:
    """The eight announcements (about 11 s of a real female voice) with 0.2 s pauses."""
    pause = np.zeros(int(0.2 * SR), np.float32)
    parts = []
    for name in ALSA_SPEECH:
        parts += [read(ALSA_DIR / f"{name}.wav"), pause]
    return np.concatenate(parts)


@functools.lru_cache(maxsize=1)
def espeak_voice() -> np.ndarray:
    """Spoken by a fresh process: espeak-ng's output depends on what its process spoke before
    (docs/scale-out.md), so a reference made inside the test process would change with the order
    the tests run in."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "espeak.npy"
        program = ("import sys, numpy as np; from index_tts.quickvoice import espeak; "
                   "np.save(sys.argv[1], espeak.speak(sys.argv[2], voice=espeak.ENGLISH))")
        subprocess.run([sys.executable, "-c", program, str(path), ESPEAK_TEXT], check=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
        return np.load(path)


def _power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2))


def _at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that speech power / noise power (whole clip) is snr_db."""
    noise = noise[: len(speech)]
    gain = np.sqrt(_power(speech) / (_power(noise) * 10 ** (snr_db / 10)))
    return (speech + gain * noise).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power noise, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def hum(n: int, mains_hz: float) -> np.ndarray:
    """Mains hum: the fundamental and its odd harmonics, as from a ground loop."""
    t = np.arange(n) / SR
    return sum(np.sin(2 * np.pi * k * mains_hz * t + k) / k for k in (1, 2, 3, 5))


def music_bed(n: int, rng: np.random.Generator) -> np.ndarray:
    """A low accompaniment: bass notes and a chord (55-330 Hz, 8 harmonics each), a new
    chord every half second with a plucked decay."""
    roots = [55.0, 55.0 * 2 ** (5 / 12), 55.0 * 2 ** (7 / 12), 55.0 * 2 ** (3 / 12)]
    note = int(0.5 * SR)
    t = np.arange(note) / SR
    decay = np.exp(-t / 0.35)
    out = np.zeros(n + note)
    for i, start in enumerate(range(0, n, note)):
        root = roots[i % len(roots)]
        chord = np.zeros(note)
        for ratio in (1.0, 2.0, 2.0 * 2 ** (4 / 12), 3.0, 6.0):
            f0 = root * ratio
            chord += sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k ** 1.5
                         for k in range(1, 9) if k * f0 < SR / 2)
        out[start: start + note] += chord * decay
    return out[:n]


def phone(x: np.ndarray) -> tuple[np.ndarray, int]:
    """A telephone channel: 300-3400 Hz band-pass at 8 kHz."""
    y = soxr.resample(x, SR, 8000)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    return signal.sosfilt(sos, y).astype(np.float32), 8000


def reverb(x: np.ndarray, rng: np.random.Generator, rt60_s: float = 0.5) -> np.ndarray:
    """A room: exponentially decaying noise impulse response (RT60 0.5 s) after the direct path."""
    n = int(rt60_s * SR)
    ir = rng.standard_normal(n) * 10 ** (-3 * np.arange(n) / n)  # -60 dB at rt60
    ir[: int(0.005 * SR)] = 0
    ir *= 0.5 / np.sqrt(np.sum(ir**2))  # wet energy a quarter of the dry
    ir[0] = 1.0
    y = signal.fftconvolve(x, ir)[: len(x) + n // 2]
    return (y / np.abs(y).max() * np.abs(x).max()).astype(np.float32)


def degrade(x: np.ndarray, case: str, seed: int = 0) -> tuple[np.ndarray, int]:
    """One degraded copy of `x` (at SR): returns (audio, its sample rate)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    if case == "clean":
        return x, SR
    if case.startswith("white"):
        return _at_snr(x, rng.standard_normal(n), float(case[5:])), SR
    if case.startswith("pink"):
        return _at_snr(x, pink_noise(n, rng), float(case[4:])), SR
    if case.startswith("hum"):
        return _at_snr(x, hum(n, float(case[3:])), 20.0), SR
    if case == "music15":
        return _at_snr(x, music_bed(n, rng), 15.0), SR
    if case == "phone8k":
        return phone(x)
    if case == "reverb":
        return reverb(x, rng), SR
    if case == "excerpt3s":
        start = max((n - 3 * SR) // 2, 0)
        return x[start: start + 3 * SR], SR
    raise ValueError(f"unknown degradation {case!r}")


def music_only(seconds: float = 6.0) -> np.ndarray:
    x = music_bed(int(seconds * SR), np.random.default_rng(1))
    return (0.2 * x / np.abs(x).max()).astype(np.float32)
