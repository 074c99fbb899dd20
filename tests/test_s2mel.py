"""CPU unit tests for the s2mel stage (tiny random configs; conformance against upstream lives in
tests/conformance)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from index_tts.modules.dit import TimestepEmbedder, apply_rope, rope_cos_sin
from index_tts.modules.flow_matching import time_grid
from index_tts.modules.length_regulator import nearest_source_index
from index_tts.modules.s2mel import (
    KNOWN_UNUSED_KEYS,
    S2Mel,
    S2MelConfig,
    load_s2mel_checkpoint,
    mel_frames_for_codes,
)
from index_tts.modules.wavenet import SConv1d

TINY = {
    "dit_type": "DiT",
    "style_encoder": {"dim": 8},
    "length_regulator": {"channels": 16, "is_discrete": False, "in_channels": 24, "sampling_ratios": [1, 1]},
    "DiT": {
        "hidden_dim": 32, "num_heads": 2, "depth": 5, "in_channels": 80, "content_dim": 16,
        "style_condition": True, "final_layer_type": "wavenet", "is_causal": False,
        "long_skip_connection": True, "uvit_skip_connection": True, "zero_prompt_speech_token": False,
        "time_as_token": False, "style_as_token": False,
    },
    "wavenet": {"hidden_dim": 32, "num_layers": 3, "kernel_size": 5, "dilation_rate": 1, "style_condition": True},
}


def tiny_model(seed: int = 0) -> S2Mel:
    torch.manual_seed(seed)
    model = S2Mel(S2MelConfig.from_dict(TINY)).eval()
    with torch.no_grad():  # non-trivial values everywhere (GroupNorm/RMSNorm default to 1/0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def official_layout(model: S2Mel) -> dict:
    """The model's weights in the s2mel.pth layout, plus the unused tensors upstream also stores."""
    net = {name: {} for name in ("cfm", "length_regulator", "gpt_layer")}
    for key, value in model.state_dict().items():
        name, rest = key.split(".", 1)
        net[name][rest] = value.clone()
    for key in KNOWN_UNUSED_KEYS:
        name, rest = key.split(".", 1)
        net[name][rest] = torch.zeros(3)
    return {"net": net, "optimizer": {"state": {}}, "iters": 7, "epoch": 1}


def cfm_inputs(B=1, T=19, P=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(
        mu=torch.randn(B, T, 16, generator=g),
        x_lens=torch.tensor([T]),
        prompt=torch.randn(B, 80, P, generator=g),
        style=torch.randn(B, 8, generator=g),
        z=torch.randn(B, 80, T, generator=g),
    )


def test_batched_cfg_equals_two_separate_estimator_calls():
    model = tiny_model()
    inp = cfm_inputs()
    out = model.cfm.inference(**inp, n_timesteps=4, cfg_rate=0.7)

    est = model.cfm.estimator
    P = inp["prompt"].shape[-1]
    x = inp["z"].clone()
    prompt_x = torch.zeros_like(x)
    prompt_x[..., :P] = inp["prompt"]
    x[..., :P] = 0
    t_span = time_grid(4)
    t = t_span[0]
    with torch.no_grad():
        for k in range(1, 5):
            dt = t_span[k] - t_span[k - 1]
            v_c = est(x, prompt_x, inp["x_lens"], t[None], inp["style"], inp["mu"])
            v_u = est(x, torch.zeros_like(prompt_x), inp["x_lens"], t[None], torch.zeros_like(inp["style"]), torch.zeros_like(inp["mu"]))
            x = x + dt * (1.7 * v_c - 0.7 * v_u)
            t = t + dt
            x[..., :P] = 0
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)
    # Guidance must matter, or the comparison above proves little.
    no_cfg = model.cfm.inference(**inp, n_timesteps=4, cfg_rate=0.0)
    assert (no_cfg - out).abs().max() > 1e-3


def test_cfm_keeps_prompt_zero_and_leaves_z_untouched():
    model = tiny_model()
    inp = cfm_inputs(P=5)
    z_before = inp["z"].clone()
    out = model.cfm.inference(**inp, n_timesteps=3)
    assert out.shape == (1, 80, 19)
    assert torch.equal(out[..., :5], torch.zeros(1, 80, 5))
    assert out[..., 5:].abs().sum() > 0
    assert torch.equal(inp["z"], z_before)


def test_cfm_draws_noise_from_generator_when_z_is_missing():
    model = tiny_model()
    inp = cfm_inputs()
    inp.pop("z")
    a = model.cfm.inference(**inp, n_timesteps=2, generator=torch.Generator().manual_seed(3))
    b = model.cfm.inference(**inp, n_timesteps=2, generator=torch.Generator().manual_seed(3))
    c = model.cfm.inference(**inp, n_timesteps=2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_the_post_net_of_the_prompt_frames_can_be_skipped():
    """frames_from: the DiT's last frames equal the whole forward's (the WaveNet reaches
    left_context frames back); the CFM without the prompt's velocity gives the same mel."""
    model = tiny_model()
    est = model.cfm.estimator
    assert est.wavenet.left_context == 3 * 2  # 3 layers, kernel 5, dilation 1: 2 frames back each
    g = torch.Generator().manual_seed(2)
    B, T = 2, 31
    x, prompt_x = torch.randn(B, 80, T, generator=g), torch.randn(B, 80, T, generator=g)
    args = (torch.tensor([T, 27]), torch.tensor([0.3, 0.3]), torch.randn(B, 8, generator=g), torch.randn(B, T, 16, generator=g))
    with torch.no_grad():
        whole = est(x, prompt_x, *args)
        for frames_from in (3, 10, T - 1):  # the post-net cut at none, at 4, at 24 frames
            part = est(x, prompt_x, *args, frames_from)
            assert part.shape == (B, 80, T - frames_from)
            torch.testing.assert_close(part, whole[..., frames_from:], atol=1e-5, rtol=1e-5)
    causal = S2Mel(S2MelConfig.from_dict({**TINY, "DiT": {**TINY["DiT"], "is_causal": True}})).eval()
    with torch.no_grad():  # a causal mask's rows are the queries: cut with them
        torch.testing.assert_close(causal.cfm.estimator(x, prompt_x, *args, 20),
                                   causal.cfm.estimator(x, prompt_x, *args)[..., 20:], atol=1e-5, rtol=1e-5)
    inp = cfm_inputs(T=40, P=22)
    out = model.cfm.inference(**inp, n_timesteps=3)
    skipped = model.cfm.inference(**inp, n_timesteps=3, prompt_velocity=False)
    torch.testing.assert_close(skipped, out, atol=1e-5, rtol=1e-5)
    assert torch.equal(skipped[..., :22], torch.zeros(1, 80, 22))


def test_sconv1d_uses_reflect_padding_not_zero_padding():
    torch.manual_seed(0)
    conv = SConv1d(3, 4, 5)
    x = torch.randn(2, 3, 11)
    y = conv(x)
    w = conv.conv.conv.weight  # weight-normed: g * v / ||v||
    expected = F.conv1d(F.pad(x, (2, 2), mode="reflect"), w, conv.conv.conv.bias)
    zero_padded = F.conv1d(x, w, conv.conv.conv.bias, padding=2)
    assert y.shape == (2, 4, 11)
    torch.testing.assert_close(y, expected)
    assert not torch.allclose(y[..., :2], zero_padded[..., :2])
    assert set(conv.state_dict()) == {"conv.conv.weight_g", "conv.conv.weight_v", "conv.conv.bias"}


def test_sconv1d_handles_inputs_shorter_than_the_padding():
    conv = SConv1d(2, 2, 5)
    assert conv(torch.randn(1, 2, 2)).shape == (1, 2, 2)


def test_loader_reports_unexpected_and_missing_keys_by_name():
    model = tiny_model()
    ckpt = official_layout(model)
    ckpt["net"]["cfm"]["estimator.bogus.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="cfm.estimator.bogus.weight"):
        load_s2mel_checkpoint(ckpt, tiny_model(1))

    ckpt = official_layout(model)
    del ckpt["net"]["gpt_layer"]["1.bias"]
    with pytest.raises(KeyError, match=r"gpt_layer\.1\.bias"):
        load_s2mel_checkpoint(ckpt, tiny_model(1))


def test_loader_skips_known_unused_keys_strips_module_prefix_and_ignores_training_state(tmp_path):
    model = tiny_model(0)
    ckpt = official_layout(model)
    ckpt["net"]["length_regulator"] = {f"module.{k}": v for k, v in ckpt["net"]["length_regulator"].items()}
    path = tmp_path / "s2mel.pth"
    torch.save(ckpt, path)
    other = load_s2mel_checkpoint(path, tiny_model(1))
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_nearest_index_follows_pytorch_float32_rule():
    for t_in, t_out in [(30, 86), (26, 44), (7, 7), (5, 10), (50, 86), (86, 30), (1, 9)]:
        probe = torch.arange(t_in, dtype=torch.float32)[None, None]
        ref = F.interpolate(probe, size=t_out, mode="nearest")[0, 0].long()
        assert torch.equal(nearest_source_index(t_in, t_out), ref), (t_in, t_out)
    # The fp32 rule is not exact integer arithmetic: 30 -> 86 disagrees at frame 43.
    assert nearest_source_index(30, 86)[43] != (43 * 30) // 86


def test_length_regulator_output_shape_and_mask():
    model = tiny_model()
    x = torch.randn(2, 10, 24)
    out, olens = model.length_regulator(x, ylens=torch.tensor([17, 12]))
    assert out.shape == (2, 17, 16)
    assert torch.equal(olens, torch.tensor([17, 12]))
    assert torch.equal(out[1, 12:], torch.zeros(5, 16))
    assert out[1, :12].abs().sum(dim=-1).gt(0).all()


def test_mel_frames_for_codes_truncates_the_float32_product():
    n = torch.arange(1, 400)
    expected = (n.numpy().astype(np.float32) * np.float32(1.72)).astype(np.int64)
    assert torch.equal(mel_frames_for_codes(n), torch.from_numpy(expected))
    assert int(mel_frames_for_codes(torch.tensor([26]))) == 44


def test_timestep_embedding_is_cos_then_sin():
    emb = TimestepEmbedder(8)
    emb.mlp = torch.nn.Identity()
    feats = emb(torch.tensor([0.0, 0.5]))
    assert torch.equal(feats[0, :128], torch.ones(128))
    assert torch.equal(feats[0, 128:], torch.zeros(128))
    # Highest frequency is 1, and t is scaled by 1000 first.
    assert feats[1, 0].item() == pytest.approx(np.cos(500.0), abs=1e-4)


def test_rope_rotates_interleaved_pairs():
    x = torch.zeros(1, 2, 1, 8)
    x[..., 0] = 1.0  # only the first element of pair (0, 1) is set
    cos, sin = rope_cos_sin(torch.arange(2), 8)
    y = apply_rope(x, cos, sin)
    assert y[0, 1, 0, 0].item() == pytest.approx(np.cos(1.0), abs=1e-6)
    assert y[0, 1, 0, 1].item() == pytest.approx(np.sin(1.0), abs=1e-6)  # the partner is element 1, not 4
    assert torch.equal(y[0, 1, 0, 2:], torch.zeros(6))


def test_uvit_skips_only_reach_the_receiving_layers():
    model = tiny_model()
    est = model.cfm.estimator
    T = 9
    args = (torch.randn(1, 80, T), torch.randn(1, 80, T), torch.tensor([T]), torch.tensor([0.3]), torch.randn(1, 8), torch.randn(1, T, 16))
    with torch.no_grad():
        base = est(*args)
        est.transformer.layers[1].skip_in_linear.weight.add_(1.0)  # depth 5: layers 0, 1 emit; 2 neither
        assert torch.equal(est(*args), base)
        est.transformer.layers[3].skip_in_linear.weight.add_(1.0)  # layer 3 receives layer 1's output
        assert not torch.allclose(est(*args), base)
