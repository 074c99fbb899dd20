"""Small CPU tests for BigVGAN, the alias-free activation, CAMPPlus and the semantic codec.

The conformance fixtures check numbers against upstream; these check properties that must hold
for any weights: weight-norm folding, lengths, strict loading and the discrete decisions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from index_tts.modules.alias_free import Activation1d, DownSample1d, SnakeBeta, UpSample1d, kaiser_sinc_filter
from index_tts.modules.bigvgan import BigVGAN, BigVGANConfig, load_bigvgan
from index_tts.modules.campplus import CAMPPlus, CAMLayer, load_campplus
from index_tts.modules.semantic_codec import RepCodec, SemanticCodecConfig, load_semantic_codec


TINY_VOCODER = BigVGANConfig(
    num_mels=8,
    upsample_rates=(4, 2),
    upsample_kernel_sizes=(8, 4),
    upsample_initial_channel=16,
    resblock_kernel_sizes=(3, 5),
    resblock_dilation_sizes=((1, 3), (1, 3)),
    use_tanh_at_final=False,
    use_bias_at_final=False,
)
TINY_CODEC = SemanticCodecConfig(
    codebook_size=32, hidden_size=24, codebook_dim=4, vocos_dim=16, vocos_intermediate_dim=32, vocos_num_layers=2
)


def _randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Random parameters (the default init makes weight-norm g == ||v||, hiding folding bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


# --------------------------------------------------------------------------------------------
# alias-free activation


def test_kaiser_filter_is_symmetric_unit_gain_lowpass():
    taps = kaiser_sinc_filter(0.25, 0.3, 12)[0, 0].double()
    assert taps.shape == (12,)
    assert torch.allclose(taps.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(taps, taps.flip(0))
    # Response at Nyquist is small: the filter really is a low-pass.
    alternating = torch.tensor([(-1.0) ** i for i in range(12)], dtype=torch.float64)
    assert (taps * alternating).sum().abs() < 0.05


def test_resampling_round_trip_keeps_a_slow_sine():
    t = torch.arange(200, dtype=torch.float32)
    x = torch.sin(2 * torch.pi * 0.02 * t)[None, None].repeat(1, 3, 1)  # [1, 3, 200]
    up = UpSample1d()(x)
    assert up.shape == (1, 3, 400)
    y = DownSample1d()(up)
    assert y.shape == x.shape
    # Away from the replicate-padded edges the band-limited sine comes back nearly unchanged.
    assert (y - x)[..., 20:-20].abs().max() < 0.02


def test_snakebeta_matches_its_formula_with_log_parameters():
    act = SnakeBeta(2, logscale=True)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.3, -0.5]))
        act.beta.copy_(torch.tensor([-0.2, 0.4]))
    x = torch.randn(1, 2, 9)
    a = torch.tensor([0.3, -0.5]).exp()[None, :, None]
    b = torch.tensor([-0.2, 0.4]).exp()[None, :, None]
    assert torch.allclose(act(x), x + torch.sin(a * x) ** 2 / b, atol=1e-6)


def test_activation_filters_are_persistent_buffers():
    keys = set(Activation1d(4).state_dict())
    assert keys == {"act.alpha", "act.beta", "upsample.filter", "downsample.lowpass.filter"}


# --------------------------------------------------------------------------------------------
# BigVGAN


def test_bigvgan_output_length_is_frames_times_hop():
    model = BigVGAN(TINY_VOCODER).eval()
    with torch.no_grad():
        wav = model(torch.randn(2, 8, 7))
    assert wav.shape == (2, 1, 7 * TINY_VOCODER.total_upsample)


def test_bigvgan_folded_weight_norm_equals_unfolded():
    model = BigVGAN(TINY_VOCODER).eval()
    _randomize(model, scale=0.2)
    mel = torch.randn(1, 8, 6)
    with torch.no_grad():
        before = model(mel)
        model.remove_weight_norm()
        after = model(mel)
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())
    assert before.abs().max() > 1e-3  # a silent model would make the comparison meaningless
    assert torch.allclose(before, after, atol=1e-6, rtol=1e-5)


def test_bigvgan_clamps_instead_of_tanh():
    model = BigVGAN(TINY_VOCODER).eval()
    _randomize(model, scale=1.0)
    with torch.no_grad():
        wav = model(torch.randn(1, 8, 10) * 5)
    assert wav.abs().max() <= 1.0
    assert (wav.abs() == 1.0).any()  # clamped samples sit exactly at the rail (tanh never reaches it)


def test_bigvgan_loader_reads_config_and_generator(tmp_path):
    src = BigVGAN(TINY_VOCODER)
    _randomize(src, seed=3)
    cfg = {
        "resblock": "1",
        "num_mels": 8,
        "upsample_rates": [4, 2],
        "upsample_kernel_sizes": [8, 4],
        "upsample_initial_channel": 16,
        "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3], [1, 3]],
        "activation": "snakebeta",
        "snake_logscale": True,
        "use_tanh_at_final": False,
        "use_bias_at_final": False,
        "learning_rate": 1e-4,  # training fields are ignored
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    torch.save({"generator": src.state_dict()}, tmp_path / "bigvgan_generator.pt")
    model = load_bigvgan(tmp_path)
    assert model.weight_norm_folded and not model.training
    mel = torch.randn(1, 8, 5)
    with torch.no_grad():
        assert torch.allclose(model(mel), src.eval()(mel), atol=1e-6)


def test_bigvgan_missing_key_is_named():
    sd = BigVGAN(TINY_VOCODER).state_dict()
    del sd["resblocks.1.convs2.0.weight_v"]
    with pytest.raises(RuntimeError, match=r"resblocks\.1\.convs2\.0\.weight_v"):
        BigVGAN.from_checkpoint(TINY_VOCODER, {"generator": sd})


# --------------------------------------------------------------------------------------------
# CAMPPlus


def test_cam_segment_mean_averages_partial_last_segment_over_real_frames():
    x = torch.randn(1, 3, 250)
    seg = CAMLayer.segment_mean(x)
    assert seg.shape == x.shape
    assert torch.allclose(seg[..., 0], x[..., :100].mean(-1), atol=1e-6)
    assert torch.allclose(seg[..., 150], x[..., 100:200].mean(-1), atol=1e-6)
    assert torch.allclose(seg[..., 249], x[..., 200:250].mean(-1), atol=1e-6)


def test_campplus_embedding_shape_and_batch_independence():
    model = CAMPPlus(feat_dim=40, embedding_size=12, growth_rate=4, bn_size=2, init_channels=16).eval()
    feats = torch.randn(2, 60, 40)
    with torch.no_grad():
        both = model(feats)
        first = model(feats[:1])
    assert both.shape == (2, 12)
    assert torch.allclose(both[:1], first, atol=1e-5)


def test_campplus_official_keys_and_strict_load(tmp_path):
    model = CAMPPlus()
    sd = model.state_dict()
    assert len(sd) == 937
    assert "xvector.dense.nonlinear.batchnorm.weight" not in sd  # the final BN is non-affine
    del sd["xvector.block2.tdnnd7.cam_layer.linear2.bias"]
    torch.save(sd, tmp_path / "campplus.bin")
    with pytest.raises(RuntimeError, match=r"xvector\.block2\.tdnnd7\.cam_layer\.linear2\.bias"):
        load_campplus(tmp_path / "campplus.bin")


# --------------------------------------------------------------------------------------------
# semantic codec


def _save_codec(model: RepCodec, path: Path, extra: dict | None = None, drop: str | None = None) -> None:
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if drop:
        del sd[drop]
    sd.update(extra or {})
    save_file(sd, str(path))


def test_codec_quantize_picks_cosine_nearest_raw_code(tmp_path):
    model = RepCodec(TINY_CODEC).eval()
    _randomize(model, seed=5)
    x = torch.randn(2, 9, 24)
    with torch.no_grad():
        ids, quantized = model.quantize(x)
        vq = model.quantizer.quantizers[0]
        z_e = vq.in_project(model.encoder(x.transpose(1, 2)).transpose(1, 2))  # [B, d, T]
        cos = F.normalize(z_e.transpose(1, 2), dim=-1) @ F.normalize(vq.codebook.weight, dim=-1).t()
        raw = vq.out_project(vq.codebook.weight[ids].transpose(1, 2)).transpose(1, 2)
    assert ids.shape == (2, 9) and ids.dtype == torch.int64
    assert torch.equal(ids, cos.argmax(-1))
    assert quantized.shape == (2, 9, 24)
    assert torch.allclose(quantized, raw, atol=1e-5)  # the raw (un-normalised) row is projected


def test_codec_vq2emb_matches_quantize_embeddings():
    model = RepCodec(TINY_CODEC).eval()
    _randomize(model, seed=6)
    x = torch.randn(1, 7, 24)
    with torch.no_grad():
        ids, quantized = model.quantize(x)
        emb = model.vq2emb(ids[:, None, :])  # [1, hidden, n]
    assert emb.shape == (1, 24, 7)
    assert torch.allclose(emb.transpose(1, 2), quantized, atol=1e-5)


def test_codec_loader_skips_decoder_but_names_other_keys(tmp_path):
    model = RepCodec(TINY_CODEC)
    _randomize(model, seed=7)
    decoder = {"decoder.1.weight": torch.zeros(24, 16), "decoder.1.bias": torch.zeros(24)}
    _save_codec(model, tmp_path / "ok.safetensors", extra=decoder)
    loaded = load_semantic_codec(tmp_path / "ok.safetensors", TINY_CODEC)
    assert torch.equal(loaded.quantizer.quantizers[0].codebook.weight, model.quantizer.quantizers[0].codebook.weight)

    _save_codec(model, tmp_path / "missing.safetensors", drop="quantizer.quantizers.0.in_project.weight_g")
    with pytest.raises(KeyError, match=r"quantizer\.quantizers\.0\.in_project\.weight_g"):
        load_semantic_codec(tmp_path / "missing.safetensors", TINY_CODEC)

    _save_codec(model, tmp_path / "extra.safetensors", extra={"encoder.2.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match=r"encoder\.2\.weight"):
        load_semantic_codec(tmp_path / "extra.safetensors", TINY_CODEC)


def test_codec_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="vocos_layers"):
        SemanticCodecConfig.from_dict({"vocos_layers": 3})
