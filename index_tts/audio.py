"""Audio front end of the IndexTTS2 engine: decoding, resampling, and the three feature front ends.

Pure functions on float32 numpy arrays / torch tensors; nothing here holds state or loads a model.
Upstream references (spec §2.2, §2.4, fixture README §5.1-5.4):

- speaker prompt:  librosa.load(path) at 22050 Hz (soxr HQ), cut to 15 s, then torchaudio's
                   Resample(22050, 16000) (windowed sinc) for the 16 kHz features;
- emotion prompt:  librosa.load(path, sr=16000) (soxr HQ straight from the file rate), cut to 15 s;
- ref mel:         s2mel `mel_spectrogram` (torch.stft + librosa's slaney mel basis, rebuilt here), 22050 Hz;
- CAMPPlus input:  torchaudio.compliance.kaldi.fbank on the [-1, 1] waveform;
- w2v-BERT input:  SeamlessM4TFeatureExtractor (the same Kaldi fbank on the waveform x 2^15,
                   per-bin normalised, frames stacked in pairs).

Nothing here uses torchaudio or librosa: the Kaldi fbank, the sinc resampler and the mel basis are our
own, pinned to upstream by the conformance fixtures.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from os import PathLike

import numpy as np
import soundfile as sf
import soxr
import torch

# ---------------------------------------------------------------------------------------------
# Constants

SPEAKER_SR = 22050  # the engine's output rate; speaker prompts are read at this rate
FEATURE_SR = 16000  # w2v-BERT and CAMPPlus features
MAX_PROMPT_SECONDS = 15  # upstream cuts both prompts to their first 15 s

# Kaldi fbank defaults (torchaudio.compliance.kaldi / SeamlessM4TFeatureExtractor).
KALDI_FRAME_MS = 25.0  # 400 samples at 16 kHz
KALDI_SHIFT_MS = 10.0  # 160 samples at 16 kHz; the FFT is the next power of two >= the frame (512)
KALDI_PREEMPH = 0.97
KALDI_POVEY_POWER = 0.85  # povey window = (symmetric Hann) ** 0.85
KALDI_LOW_FREQ = 20.0
KALDI_NUM_MEL_BINS = 80
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.1920929e-07, the log floor of both fbanks

# SeamlessM4TFeatureExtractor (facebook/w2v-bert-2.0 preprocessor_config.json).
# facebook/w2v-bert-2.0 preprocessor_config.json. The extractor scales audio to the int16 range,
# takes an 80-bin Kaldi fbank, normalises each bin, pads to an even frame count with 1.0 (not 0)
# and stacks frame pairs: 100 Hz x 80 -> 50 Hz x 160.
W2V_PREPROCESSOR = dict(feature_size=80, num_mel_bins=80, padding_value=1.0, stride=2,
                        sampling_rate=16000, return_attention_mask=True, padding_side="right")

# s2mel `preprocess_params` of the official config.yaml.
DEFAULT_PREPROCESS_PARAMS = {
    "sr": 22050,
    "spect_params": {"n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80, "fmin": 0, "fmax": "None"},
}
MEL_MAG_EPS = 1e-9  # added under the sqrt of the STFT magnitude
MEL_LOG_FLOOR = 1e-5  # clamp before log
# Slaney mel scale (Auditory Toolbox; librosa's default, htk=False).
SLANEY_HZ_PER_MEL = 200.0 / 3
SLANEY_BREAK_HZ = 1000.0  # linear below, logarithmic above
SLANEY_LOG_STEP = math.log(6.4) / 27.0  # mels per log-Hz above the break


class AudioError(ValueError):
    """The audio input cannot be used: unreadable, corrupt, empty or not finite."""


# ---------------------------------------------------------------------------------------------
# Decoding


def load_audio(source: str | PathLike | bytes | bytearray) -> tuple[np.ndarray, int]:
    """Decode a file (path or bytes) with libsndfile: float32 mono [N] and its sample rate.

    Multichannel audio is averaged, as librosa.load(mono=True) does.
    """
    what = "audio bytes" if isinstance(source, (bytes, bytearray)) else f"audio file {str(source)!r}"
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError("audio bytes are empty")
        source = io.BytesIO(bytes(source))
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)  # [N, C]
    except (sf.LibsndfileError, RuntimeError, TypeError, EOFError) as e:
        raise AudioError(f"cannot decode {what}: {e}") from e
    except OSError as e:  # missing file, permissions
        raise AudioError(f"cannot read {what}: {e}") from e
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{what} contains no samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{what} contains NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


# ---------------------------------------------------------------------------------------------
# Resampling


def resample_hq(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """librosa.resample(res_type="soxr_hq") bit for bit: soxr HQ, then pad/trim to ceil(N*sr_out/sr_in)."""
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    y = soxr.resample(x, sr_in, sr_out, quality="HQ")
    # librosa computes the target length from a float ratio; copy it so the lengths agree exactly.
    n_out = int(np.ceil(x.shape[-1] * (float(sr_out) / sr_in)))
    if y.shape[-1] >= n_out:
        return np.ascontiguousarray(y[:n_out], dtype=np.float32)
    return np.pad(y, (0, n_out - y.shape[-1])).astype(np.float32)


@lru_cache(maxsize=8)
def _sinc_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """torchaudio's hann-windowed sinc kernel for gcd-reduced rates: ([new, 1, 2*width + orig], width).

    Output phase j of each block of `new` samples sits at input time j*orig/new; kernel tap k of
    that phase reads input sample (block start - width + k).
    """
    base_freq = min(orig, new) * rolloff  # cutoff below the lower Nyquist, in reduced-rate units
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig  # [1, 1, K]
    # torchaudio computes the phase offsets j/new in float32 before mixing with float64; keep that.
    phase = (torch.arange(0, -new, -1, dtype=torch.int64)[:, None, None] / new).to(torch.float32)
    t = (phase.double() + idx) * base_freq  # [new, 1, K], in units of the cutoff period
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernel = sinc * window * (base_freq / orig)
    return kernel.to(torch.float32), width


def resample_sinc(x: np.ndarray | torch.Tensor, sr_in: int, sr_out: int, lowpass_filter_width: int = 6,
                  rolloff: float = 0.99) -> np.ndarray:
    """torchaudio.functional.resample (sinc_interp_hann) as a polyphase strided conv. [N] -> [ceil(N*sr_out/sr_in)]."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if sr_in == sr_out:
        return x.numpy()
    g = math.gcd(int(sr_in), int(sr_out))
    orig, new = int(sr_in) // g, int(sr_out) // g
    kernel, width = _sinc_kernel(orig, new, lowpass_filter_width, float(rolloff))
    n = x.shape[-1]
    padded = torch.nn.functional.pad(x[None, None], (width, width + orig))  # [1, 1, N + 2w + orig]
    with torch.no_grad():
        y = torch.nn.functional.conv1d(padded, kernel, stride=orig)  # [1, new, blocks]
    y = y[0].transpose(0, 1).reshape(-1)  # interleave the phases: [blocks * new]
    n_out = math.ceil(new * n / orig)
    return y[:n_out].numpy().astype(np.float32, copy=False)


def resample_sinc_22050_to_16000(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The speaker prompt's 16 kHz path: torchaudio Resample(22050, 16000) (441 -> 320 after gcd 50)."""
    return resample_sinc(x, SPEAKER_SR, FEATURE_SR)


# ---------------------------------------------------------------------------------------------
# Prompt paths


def cut_seconds(x: np.ndarray, sr: int, seconds: float = MAX_PROMPT_SECONDS) -> np.ndarray:
    """The first `seconds` of `x` (upstream: int(seconds * sr) samples)."""
    return x[: int(seconds * sr)]


def speaker_audio(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Spec §2.2: (audio_22k [N22], audio_16k [ceil(N22*320/441)]) for the speaker prompt.

    22050 Hz by soxr HQ, cut to 15 s, then the torchaudio-style sinc resampler to 16 kHz.
    """
    audio_22k = cut_seconds(resample_hq(x, sr, SPEAKER_SR), SPEAKER_SR)
    return audio_22k, resample_sinc_22050_to_16000(audio_22k)


def emotion_audio(x: np.ndarray, sr: int) -> np.ndarray:
    """Spec §2.4: the emotion prompt straight to 16 kHz by soxr HQ, cut to 15 s: [N16]."""
    return cut_seconds(resample_hq(x, sr, FEATURE_SR), FEATURE_SR)


# ---------------------------------------------------------------------------------------------
# s2mel reference mel (spec §2.2.6)


def mel_params(preprocess_params: dict | None = None) -> dict:
    """sr, n_fft, win, hop, n_mels, fmin, fmax from the s2mel `preprocess_params` config block.

    Upstream's rule for fmax: the string "None" means None (= sr/2); anything else, even a missing
    key or a number, means 8000 Hz.
    """
    p = preprocess_params or DEFAULT_PREPROCESS_PARAMS
    sp = p["spect_params"]
    return {
        "sr": int(p["sr"]),
        "n_fft": int(sp["n_fft"]),
        "win_length": int(sp["win_length"]),
        "hop_length": int(sp["hop_length"]),
        "n_mels": int(sp["n_mels"]),
        "fmin": sp.get("fmin", 0),
        "fmax": None if sp.get("fmax", None) == "None" else 8000,
    }


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's Auditory Toolbox scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / SLANEY_HZ_PER_MEL
    above = hz >= SLANEY_BREAK_HZ
    mel[above] = SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL + np.log(hz[above] / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP
    return mel


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * SLANEY_HZ_PER_MEL
    above = mel >= SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL
    hz[above] = SLANEY_BREAK_HZ * np.exp(SLANEY_LOG_STEP * (mel[above] - SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL))
    return hz


@lru_cache(maxsize=4)
def _slaney_mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    """Triangles on the slaney scale, area-normalised (librosa.filters.mel's defaults, bit for bit:
    float64 arithmetic, rounded to float32 once for the triangles and once after the scaling)."""
    fmax = sr / 2 if fmax is None else fmax
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sr)  # [n_fft//2 + 1]
    edges = _slaney_mel_to_hz(np.linspace(*_hz_to_slaney_mel(np.array([fmin, fmax])), n_mels + 2))  # [n_mels + 2]
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]  # [n_mels + 2, n_fft//2 + 1]
    weights = np.zeros((n_mels, fft_hz.size), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    return torch.from_numpy(weights)


def mel_basis(preprocess_params: dict | None = None) -> torch.Tensor:
    """The slaney mel basis [n_mels, n_fft//2 + 1] float32, as librosa.filters.mel builds it."""
    m = mel_params(preprocess_params)
    return _slaney_mel_basis(m["sr"], m["n_fft"], m["n_mels"], m["fmin"], m["fmax"])


def mel_spectrogram(audio_22k: np.ndarray | torch.Tensor, preprocess_params: dict | None = None) -> torch.Tensor:
    """Log-magnitude slaney mel: [N] or [1, N] -> [1, n_mels, (N + 2p - n_fft)//hop + 1], p = (n_fft-hop)/2."""
    m = mel_params(preprocess_params)
    x = torch.as_tensor(np.asarray(audio_22k, dtype=np.float32)).reshape(1, -1)  # [1, N]
    pad = (m["n_fft"] - m["hop_length"]) // 2
    x = torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]  # [1, N + 2*pad]
    spec = torch.stft(x, m["n_fft"], hop_length=m["hop_length"], win_length=m["win_length"],
                      window=torch.hann_window(m["win_length"]), center=False, onesided=True,
                      return_complex=True)  # [1, n_fft//2 + 1, T]
    mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + MEL_MAG_EPS)
    mel = torch.matmul(mel_basis(preprocess_params), mag)  # [1, n_mels, T]
    return torch.log(torch.clamp(mel, min=MEL_LOG_FLOOR))


# ---------------------------------------------------------------------------------------------
# Kaldi fbank (one implementation for CAMPPlus and for the w2v-BERT extractor)
#
# The two users differ only in scale and precision: torchaudio's kaldi.fbank runs in float32 torch,
# transformers' extractor in float64 numpy. Computing each in its own precision, in the same
# order, lands within ~1e-5 of upstream instead of ~3e-4 on low-energy bins.


def _kaldi_mel(hz):
    return 1127.0 * torch.log(1.0 + hz / 700.0)


def kaldi_mel_banks(num_bins: int, fft_size: int, sample_rate: float, low_freq: float = KALDI_LOW_FREQ,
                    high_freq: float = 0.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Kaldi's filters, triangular in mel space: [num_bins, fft_size//2 + 1].

    high_freq <= 0 counts down from Nyquist, as in Kaldi. The Nyquist column is zero (Kaldi's
    filters cover fft_size//2 bins and torchaudio pads the last one).
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0:
        high_freq += nyquist
    mel_lo = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_hi = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_hi - mel_lo) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=dtype)[:, None]  # [bins, 1]
    left, center, right = mel_lo + b * delta, mel_lo + (b + 1.0) * delta, mel_lo + (b + 2.0) * delta
    fft_mel = _kaldi_mel(sample_rate / fft_size * torch.arange(fft_size // 2, dtype=dtype))[None]  # [1, F]
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_fbank_frames(audio: np.ndarray | torch.Tensor, sample_rate: int = FEATURE_SR,
                       num_mel_bins: int = KALDI_NUM_MEL_BINS, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Kaldi log-mel fbank of `audio`, computed in `dtype`: [T, num_mel_bins].

    At 16 kHz: frames of 400 with shift 160 (snip_edges: T = 1 + (N - 400)//160), FFT 512.
    Per frame: remove DC, pre-emphasis 0.97 (first sample against itself), povey window, zero-pad
    to the FFT size, power spectrum, mel, log with a float32-eps floor. No dither, no energy.
    """
    frame = int(sample_rate * KALDI_FRAME_MS * 0.001)
    shift = int(sample_rate * KALDI_SHIFT_MS * 0.001)
    fft_size = 1 << (frame - 1).bit_length()
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(-1)
    if x.shape[0] < frame:
        raise AudioError(f"audio too short for one fbank frame: {x.shape[0]} < {frame} samples")
    x = x.to(dtype)
    frames = x.unfold(0, frame, shift)  # [T, frame], T = 1 + (N - frame)//shift
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # x[-1] := x[0]
    frames = frames - KALDI_PREEMPH * previous
    povey = torch.hann_window(frame, periodic=False, dtype=dtype).pow(KALDI_POVEY_POWER)
    frames = torch.nn.functional.pad(frames * povey, (0, fft_size - frame))  # [T, fft_size]
    power = torch.fft.rfft(frames).abs().pow(2)  # [T, fft_size//2 + 1]
    mel = power @ kaldi_mel_banks(num_mel_bins, fft_size, float(sample_rate), dtype=dtype).T  # [T, bins]
    return torch.clamp(mel, min=FLOAT32_EPS).log()


def kaldi_fbank(audio_16k: np.ndarray | torch.Tensor, num_mel_bins: int = KALDI_NUM_MEL_BINS,
                sample_rate: int = FEATURE_SR) -> torch.Tensor:
    """torchaudio.compliance.kaldi.fbank(audio[None], num_mel_bins=80, dither=0, sample_frequency=16000): [T, 80].

    The waveform stays in [-1, 1] (CAMPPlus path); callers subtract the per-bin mean themselves.
    """
    with torch.no_grad():
        return kaldi_fbank_frames(audio_16k, sample_rate, num_mel_bins, dtype=torch.float32)


@lru_cache(maxsize=1)
def _w2v_extractor():
    from transformers import SeamlessM4TFeatureExtractor

    return SeamlessM4TFeatureExtractor(**W2V_PREPROCESSOR)


def w2v_features(audio_16k: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SeamlessM4TFeatureExtractor (w2v-BERT 2.0 config) on one utterance, as upstream calls it.

    Returns input_features [1, ceil(T/2), 160] float32 and attention_mask [1, ceil(T/2)] int32,
    T = 1 + (N - 400)//160 fbank frames. transformers' own extractor is used because w2v-BERT
    amplifies feature differences: an independent fbank at 2e-5 moved layer-17 features by 1.3e-4,
    past the pipeline tolerance; this one matches upstream's features bit for bit.
    """
    x = np.asarray(audio_16k, dtype=np.float32).reshape(1, -1)
    if x.shape[1] < int(FEATURE_SR * KALDI_FRAME_MS * 0.001):
        raise AudioError(f"audio too short for one fbank frame: {x.shape[1]} samples")
    out = _w2v_extractor()(x, sampling_rate=FEATURE_SR, return_tensors="pt")
    return out["input_features"].float(), out["attention_mask"].to(torch.int32)
