"""Unit tests for index_tts.audio (decoding errors, prompt paths) and the w2v-BERT loader's strictness.

Numerical agreement with upstream is covered by tests/conformance (kinds resample, mel_spectrogram,
kaldi_fbank, w2v_features, w2v_bert); these tests cover the behaviour the fixtures do not.
"""

import io
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from index_tts import audio
from index_tts.audio import AudioError


def tone(sr: int, seconds: float, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (c + 1) / channels for c in range(channels)], axis=1)


def wav_bytes(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = "FLOAT") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# load_audio


def test_load_audio_rejects_corrupt_bytes():
    with pytest.raises(AudioError, match="cannot decode"):
        audio.load_audio(b"RIFF\x00\x00\x00\x00WAVEthis is not audio at all" * 4)


def test_load_audio_rejects_empty_bytes_and_empty_file(tmp_path):
    with pytest.raises(AudioError, match="empty"):
        audio.load_audio(b"")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError):
        audio.load_audio(empty)


def test_load_audio_rejects_a_valid_file_without_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="no samples"):
        audio.load_audio(path)


def test_load_audio_rejects_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav"):
        audio.load_audio(tmp_path / "missing.wav")


def test_load_audio_rejects_non_finite_samples():
    x = tone(16000, 0.1)
    x[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        audio.load_audio(wav_bytes(x, 16000))


def test_load_audio_mixes_stereo_to_mono_and_keeps_the_rate():
    stereo = tone(24000, 0.25, channels=2)  # right channel is twice the left
    x, sr = audio.load_audio(wav_bytes(stereo, 24000))
    assert sr == 24000
    assert x.dtype == np.float32 and x.shape == (stereo.shape[0],)
    np.testing.assert_array_equal(x, stereo.mean(axis=1, dtype=np.float32))


def test_load_audio_path_and_bytes_agree(tmp_path):
    x0 = tone(22050, 0.3)
    path = tmp_path / "a.wav"
    sf.write(path, x0, 22050, subtype="FLOAT")
    from_path, sr1 = audio.load_audio(path)
    from_bytes, sr2 = audio.load_audio(path.read_bytes())
    assert sr1 == sr2 == 22050
    np.testing.assert_array_equal(from_path, x0)
    np.testing.assert_array_equal(from_bytes, x0)


def test_flac_round_trip_is_exact_to_16_bit(tmp_path):
    x0 = tone(44100, 0.5)
    path = tmp_path / "a.flac"
    sf.write(path, x0, 44100, subtype="PCM_16")
    x, sr = audio.load_audio(path)
    assert sr == 44100 and x.shape == x0.shape
    assert np.abs(x - x0).max() <= 1.0 / 32768 + 1e-7  # FLAC is lossless after 16-bit quantisation


def test_ogg_vorbis_round_trip_keeps_the_signal(tmp_path):
    x0 = tone(48000, 0.5, freq=440.0)
    path = tmp_path / "a.ogg"
    sf.write(path, x0, 48000, format="OGG", subtype="VORBIS")
    x, sr = audio.load_audio(path.read_bytes())
    assert sr == 48000 and x.shape == x0.shape
    # Lossy codec: the waveform is close, not equal; a decoding mistake would give noise or silence.
    mid = slice(4800, -4800)
    corr = np.corrcoef(x[mid], x0[mid])[0, 1]
    assert corr > 0.99


# ---------------------------------------------------------------------------------------------
# Resampling and the 15 s cut


def test_resample_hq_is_identity_at_equal_rates_and_fixes_the_length():
    x = tone(22050, 0.2)
    np.testing.assert_array_equal(audio.resample_hq(x, 22050, 22050), x)
    y = audio.resample_hq(tone(44100, 1.0)[:44099], 44100, 16000)
    assert y.shape == (math.ceil(44099 * 16000 / 44100),) and y.dtype == np.float32


def test_sinc_resampler_reproduces_a_sine_at_the_new_rate():
    sr_in, sr_out, f = 22050, 16000, 440.0
    x = tone(sr_in, 1.0, freq=f)
    y = audio.resample_sinc_22050_to_16000(x)
    assert y.shape == (math.ceil(len(x) * 320 / 441),)
    t = np.arange(len(y)) / sr_out
    expected = 0.4 * np.sin(2 * np.pi * f * t)
    mid = slice(200, -200)  # away from the zero-padded edges
    assert np.abs(y[mid] - expected[mid]).max() < 2e-3


def test_sinc_resampler_works_for_other_rate_pairs():
    y = audio.resample_sinc(tone(16000, 0.5, freq=300.0), 16000, 24000)
    assert y.shape == (12000,)
    t = np.arange(len(y)) / 24000
    mid = slice(300, -300)
    assert np.abs(y[mid] - 0.4 * np.sin(2 * np.pi * 300.0 * t)[mid]).max() < 2e-3


def test_speaker_audio_cuts_to_15_seconds_before_the_16k_resample():
    x = tone(44100, 16.0)
    audio_22k, audio_16k = audio.speaker_audio(x, 44100)
    assert audio_22k.shape == (15 * 22050,)
    assert audio_16k.shape == (15 * 16000,)  # ceil(330750 * 320 / 441)
    np.testing.assert_array_equal(audio_22k, audio.resample_hq(x, 44100, 22050)[: 15 * 22050])


def test_emotion_audio_goes_straight_to_16k_and_cuts_to_15_seconds():
    x = tone(48000, 15.5)
    e = audio.emotion_audio(x, 48000)
    assert e.shape == (15 * 16000,)
    np.testing.assert_array_equal(e, audio.resample_hq(x, 48000, 16000)[: 15 * 16000])


def test_short_prompts_are_not_cut():
    audio_22k, audio_16k = audio.speaker_audio(tone(22050, 2.0), 22050)
    assert audio_22k.shape == (44100,) and audio_16k.shape == (32000,)
    assert audio.emotion_audio(tone(16000, 3.0), 16000).shape == (48000,)


# ---------------------------------------------------------------------------------------------
# Feature front ends


def test_mel_params_fmax_rule():
    base = {"sr": 22050, "spect_params": {"n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80}}
    assert audio.mel_params({**base, "spect_params": {**base["spect_params"], "fmax": "None"}})["fmax"] is None
    assert audio.mel_params({**base, "spect_params": {**base["spect_params"], "fmax": 11025}})["fmax"] == 8000
    assert audio.mel_params(base)["fmax"] == 8000  # upstream: a missing key is not the string "None"


def test_mel_spectrogram_frame_count():
    n = 22050
    mel = audio.mel_spectrogram(tone(22050, 1.0))
    assert mel.shape == (1, 80, (n + 768 - 1024) // 256 + 1)


def test_kaldi_fbank_shape_and_too_short_input():
    assert audio.kaldi_fbank(tone(16000, 1.0)).shape == (1 + (16000 - 400) // 160, 80)
    with pytest.raises(AudioError, match="too short"):
        audio.kaldi_fbank(np.zeros(399, np.float32))


@pytest.mark.parametrize("n, frames, last_mask", [(24000, 74, 1), (24160, 75, 0)])
def test_w2v_features_pairs_frames_and_masks_the_padding(n, frames, last_mask):
    feats, mask = audio.w2v_features(tone(16000, 2.0)[:n])
    assert feats.shape == (1, frames, 160) and feats.dtype == torch.float32
    assert mask.dtype == torch.int32 and mask[0, -1].item() == last_mask and mask[0, :-1].all()
    if last_mask == 0:
        assert torch.equal(feats[0, -1, 80:], torch.ones(80))  # padding value is 1.0


# ---------------------------------------------------------------------------------------------
# w2v-BERT loader strictness (tiny random config; numerics are in the conformance fixtures)


def _tiny_w2v_dir(tmp_path, layers=18, extra=None, drop=None):
    from safetensors.torch import save_file
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    cfg = Wav2Vec2BertConfig(hidden_size=8, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=12,
                             feature_projection_input_dim=160, output_hidden_size=8)
    torch.manual_seed(0)
    sd = {k: v.contiguous() for k, v in Wav2Vec2BertModel(cfg).eval().state_dict().items()}
    assert "masked_spec_embed" in sd  # the official file carries it too; we must skip it
    sd.update(extra or {})
    for k in drop or []:
        del sd[k]
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save({"mean": torch.zeros(8), "var": torch.ones(8) * 4}, tmp_path / "stats.pt")
    return tmp_path


def test_w2v_bert_keeps_only_17_layers_and_normalises(tmp_path):
    from index_tts.modules.w2v_bert import W2VBertEncoder

    d = _tiny_w2v_dir(tmp_path)
    model = W2VBertEncoder.from_dir(d, d / "stats.pt")
    assert len(model.encoder.layers) == 17
    assert not any(k.startswith("encoder.layers.17.") for k in model.state_dict())
    x = torch.randn(1, 9, 160)
    m = torch.ones(1, 9, dtype=torch.int32)
    with torch.no_grad():
        assert torch.allclose(model(x, m), model.raw_features(x, m) / 2.0)


def test_w2v_bert_rejects_unknown_keys_by_name(tmp_path):
    from index_tts.modules.w2v_bert import W2VBertEncoder

    d = _tiny_w2v_dir(tmp_path, extra={"encoder.layer_norm.weight": torch.ones(8)})
    with pytest.raises(KeyError, match="encoder.layer_norm.weight"):
        W2VBertEncoder.from_dir(d, d / "stats.pt")


def test_w2v_bert_rejects_missing_keys_by_name(tmp_path):
    from index_tts.modules.w2v_bert import W2VBertEncoder

    d = _tiny_w2v_dir(tmp_path, drop=["encoder.layers.16.conv_module.depthwise_conv.weight"])
    with pytest.raises(KeyError, match="encoder.layers.16.conv_module.depthwise_conv.weight"):
        W2VBertEncoder.from_dir(d, d / "stats.pt")


def test_w2v_bert_needs_17_layers(tmp_path):
    from index_tts.modules.w2v_bert import W2VBertEncoder

    d = _tiny_w2v_dir(tmp_path, layers=16)
    with pytest.raises(ValueError, match="17"):
        W2VBertEncoder.from_dir(d, d / "stats.pt")
