"""Runners for the audio front end: resample, mel_spectrogram, kaldi_fbank, w2v_features, w2v_bert."""

import json
import tempfile
from pathlib import Path

import torch

from index_tts import audio
from tests.conformance.harness import DEVICE, check, on_device, runner, write_model_files


@runner("resample")
def run_resample(case: dict) -> None:
    cfg = case["config"]
    x = case["inputs"]["audio"].numpy()
    sr = int(case["inputs"]["sample_rate"])
    ta = cfg["torchaudio_resample"]
    assert ta["resampling_method"] == "sinc_interp_hann", ta

    audio_22k = audio.resample_hq(x, sr, cfg["sr_22k"])
    check(case, "audio_22k", torch.from_numpy(audio_22k))
    via = audio.resample_sinc(audio_22k, ta["orig_freq"], ta["new_freq"], ta["lowpass_filter_width"], ta["rolloff"])
    check(case, "audio_16k_via_22k", torch.from_numpy(via))
    check(case, "audio_16k_direct", torch.from_numpy(audio.resample_hq(x, sr, cfg["sr_16k"])))

    # The engine's fixed-rate helper must be the same function when the config is the official one.
    if (ta["orig_freq"], ta["new_freq"], ta["lowpass_filter_width"], ta["rolloff"]) == (22050, 16000, 6, 0.99):
        check(case, "audio_16k_via_22k", torch.from_numpy(audio.resample_sinc_22050_to_16000(audio_22k)))


@runner("mel_spectrogram")
def run_mel_spectrogram(case: dict) -> None:
    cfg = case["config"]
    params = {"sr": cfg["sr"], "spect_params": cfg["spect_params"]}
    assert int(case["inputs"]["sample_rate"]) == cfg["sr"]
    check(case, "mel_basis", audio.mel_basis(params))
    check(case, "mel", audio.mel_spectrogram(case["inputs"]["audio"], params))


@runner("kaldi_fbank")
def run_kaldi_fbank(case: dict) -> None:
    cfg = case["config"]
    assert cfg.get("dither", 0.0) == 0.0
    fbank = audio.kaldi_fbank(case["inputs"]["audio"], num_mel_bins=cfg["num_mel_bins"],
                              sample_rate=cfg["sample_frequency"])
    check(case, "fbank", fbank)
    check(case, "fbank_mean_removed", fbank - fbank.mean(dim=0, keepdim=True))


@runner("w2v_features")
def run_w2v_features(case: dict) -> None:
    pc = case["config"]["preprocessor_config"]
    # Our extractor hard-codes the official preprocessor config; fail loudly if a case differs.
    ours = audio.W2V_PREPROCESSOR
    assert (pc["num_mel_bins"], pc["stride"], float(pc["padding_value"]), pc["sampling_rate"]) == (
        ours["num_mel_bins"], ours["stride"], ours["padding_value"], ours["sampling_rate"]), pc
    features, mask = audio.w2v_features(case["inputs"]["audio"])
    check(case, "input_features", features)
    assert mask.dtype == case["outputs"]["attention_mask"].dtype
    check(case, "attention_mask", mask)


@runner("w2v_bert")
def run_w2v_bert(case: dict) -> None:
    from index_tts.modules.w2v_bert import W2VBertEncoder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_model_files(case["weights"], root)
        (root / "config.json").write_text(json.dumps(case["config"]["w2v_bert_config_json"]))
        model = W2VBertEncoder.from_dir(root, root / "wav2vec2bert_stats.pt").eval().to(DEVICE)
    inp = on_device(case["inputs"])
    with torch.no_grad():
        hidden = model.raw_features(inp["input_features"], inp["attention_mask"])
        emb = model(inp["input_features"], inp["attention_mask"])
    check(case, "hidden_states_17", hidden)
    check(case, "spk_cond_emb", emb)
