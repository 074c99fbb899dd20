"""CPU tests of UnifiedVoice v2 decoding on a tiny random model (no checkpoint needed)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from index_tts.modules import generation
from index_tts.modules.conformer import ConformerConfig
from index_tts.modules.generation import DecodeParams, apply_top_k, apply_top_p, generate
from index_tts.modules.unified_voice import KNOWN_UNUSED, UnifiedVoice, UnifiedVoiceConfig, load_gpt_checkpoint

TINY = UnifiedVoiceConfig(
    model_dim=32, layers=2, heads=2, max_mel_tokens=40, max_text_tokens=20,
    number_text_tokens=30, number_mel_codes=26, start_mel_token=24, stop_mel_token=25,
    condition_module=ConformerConfig(output_size=16, linear_units=24, attention_heads=2, num_blocks=1),
    emo_condition_module=ConformerConfig(output_size=8, linear_units=16, attention_heads=1, num_blocks=1),
)
GREEDY = DecodeParams(do_sample=False, num_beams=1, repetition_penalty=10.0, max_mel_tokens=12)


def tiny_model(seed: int = 0, logit_scale: float = 1.0, forbid_stop: bool = False) -> UnifiedVoice:
    """Random weights with unit-scale activations (like the fixture recipe), so logits are not flat."""
    torch.manual_seed(seed)
    model = UnifiedVoice(TINY).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if name.endswith("weight") or name.endswith("gamma"):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.05 * torch.randn_like(p))
            elif "embedding" in name or name.endswith("latents"):
                p.normal_(0, 1.0)
            elif name.startswith("gpt."):  # Conv1D: [in, out]
                p.normal_(0, p.shape[0] ** -0.5)
            else:
                p.normal_(0, p[0].numel() ** -0.5)
        model.mel_head.weight.mul_(logit_scale)
        if forbid_stop:
            model.mel_head.bias[TINY.stop_mel_token] = -1e4
    return model


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    spk = torch.randn(1, 21, 1024, generator=g)
    text = torch.tensor([[3, 7, 1, 12, 0, 5, 9]], dtype=torch.int32)
    emo = torch.randn(1, TINY.model_dim, generator=g)
    return spk, text, emo


def full_recompute_logits(model: UnifiedVoice, spk_latent, text, emo, codes: list[int]) -> torch.Tensor:
    """Logits for every decode step from one uncached causal pass over the whole sequence."""
    prompt = model.prompt_embeddings(spk_latent, emo, text)                   # [1, s + 1, d]
    if codes:
        ids = torch.tensor([codes])
        pos = torch.arange(2, 2 + len(codes))                                 # code k at mel position k + 1
        prompt = torch.cat([prompt, model.embed_mel(ids, pos)], dim=1)
    h = model.gpt(prompt)
    return model.logits(h)[0, -(len(codes) + 1):]                             # [n + 1, V]


def test_kv_cached_decoding_equals_full_recompute():
    model = tiny_model()
    spk, text, emo = inputs()
    with torch.no_grad():
        res = generate(model, spk, text, emo, GREEDY, record_steps=GREEDY.max_mel_tokens)
        codes = res.codes[0].tolist()
        ref = full_recompute_logits(model, res.spk_latent, text, emo, codes[:-1])
    cached = torch.cat(res.step_logits)
    assert cached.shape == ref.shape == (len(codes), TINY.number_mel_codes)
    torch.testing.assert_close(cached, ref, atol=1e-5, rtol=1e-5)


def test_repetition_penalty_hits_fake_prompt_id_and_start_token():
    model = tiny_model()
    spk, text, emo = inputs()
    with torch.no_grad():
        res = generate(model, spk, text, emo, GREEDY, record_steps=1)
    raw, scored = res.step_logits[0][0], res.step_scores[0][0]
    for i in range(TINY.number_mel_codes):
        if i in (1, TINY.start_mel_token):
            expected = raw[i] * 10 if raw[i] < 0 else raw[i] / 10
        else:
            expected = raw[i]
        assert scored[i].item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)


def test_beam_search_score_matches_recomputed_sum_of_logprobs():
    """Exercises cache reordering: the best beam's score must equal its own uncached log-probs."""
    model = tiny_model(seed=3)
    spk, text, emo = inputs()
    params = DecodeParams(do_sample=False, num_beams=3, repetition_penalty=10.0, length_penalty=0.0, max_mel_tokens=10)
    with torch.no_grad():
        res = generate(model, spk, text, emo, params)
        codes = res.codes[0].tolist()
        logits = full_recompute_logits(model, res.spk_latent, text, emo, codes[:-1])
    total, seen = 0.0, {1, TINY.start_mel_token}
    for t, code in enumerate(codes):
        lp = F.log_softmax(logits[t], dim=-1)
        for i in seen:
            lp[i] = lp[i] * 10 if lp[i] < 0 else lp[i] / 10
        total += lp[code].item()
        seen.add(code)
    assert res.sequence_score == pytest.approx(total, abs=1e-4)


def test_sampling_is_reproducible_with_a_seed_and_differs_across_seeds():
    model = tiny_model(logit_scale=0.1)  # nearly flat distribution: many likely sequences
    spk, text, emo = inputs()
    params = DecodeParams(do_sample=True, num_beams=1, temperature=1.0, top_k=0, top_p=1.0,
                          repetition_penalty=1.0, max_mel_tokens=15)
    with torch.no_grad():
        runs = {s: generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(s)).codes
                for s in range(4)}
        again = generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(2)).codes
        via_params = generate(model, spk, text, emo, DecodeParams(**{**params.__dict__, "seed": 2})).codes
    assert torch.equal(runs[2], again)
    assert torch.equal(runs[2], via_params)
    assert len({tuple(c[0].tolist()) for c in runs.values()}) > 1


def test_top_k_1_sampling_equals_greedy():
    model = tiny_model()
    spk, text, emo = inputs()
    sampled = DecodeParams(do_sample=True, num_beams=1, temperature=0.8, top_k=1, top_p=0.8,
                           repetition_penalty=10.0, max_mel_tokens=GREEDY.max_mel_tokens)
    with torch.no_grad():
        greedy = generate(model, spk, text, emo, GREEDY).codes
        for seed in range(3):
            codes = generate(model, spk, text, emo, sampled, generator=torch.Generator().manual_seed(seed)).codes
            assert torch.equal(codes, greedy)


def test_beam_sample_returns_valid_codes():
    model = tiny_model(seed=5)
    spk, text, emo = inputs()
    params = DecodeParams(max_mel_tokens=20)  # upstream defaults: beam-sample, 3 beams, top-k/top-p, penalty 10
    assert params.do_sample and params.num_beams == 3
    with torch.no_grad():
        a = generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(7))
        b = generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(7))
    codes = a.codes[0].tolist()
    assert 1 <= len(codes) <= params.max_mel_tokens
    body = codes[: a.code_len]
    assert all(0 <= c < TINY.start_mel_token for c in body)          # semantic ids only
    assert codes[a.code_len:] in ([], [TINY.stop_mel_token])         # stop only at the end, at most once
    assert math.isfinite(a.sequence_score) and a.sequence_score < 0
    assert torch.equal(a.codes, b.codes) and a.sequence_score == b.sequence_score


@pytest.mark.parametrize("num_beams", [1, 3])
def test_max_length_without_stop_returns_exactly_max_codes(num_beams):
    model = tiny_model(forbid_stop=True)
    spk, text, emo = inputs()
    params = DecodeParams(do_sample=False, num_beams=num_beams, repetition_penalty=10.0, length_penalty=0.0, max_mel_tokens=9)
    with torch.no_grad():
        res = generate(model, spk, text, emo, params)
    assert res.codes.shape == (1, 9)
    assert res.code_len == 9
    assert TINY.stop_mel_token not in res.codes[0].tolist()


def test_text_ids_0_and_1_are_dropped_from_the_generation_prompt():
    model = tiny_model()
    spk, text, emo = inputs()
    clean = text[:, (text[0] != 0) & (text[0] != 1)]
    with torch.no_grad():
        lat = model.get_conditioning(spk)
        assert torch.equal(model.prompt_embeddings(lat, emo, text), model.prompt_embeddings(lat, emo, clean))


def test_conformer_masks_frames_past_the_1024_length_like_upstream():
    """Lengths default to the feature dim (1024): beyond 1024 frames the tail is masked out."""
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1060, 1024, generator=g)
    y = x.clone()
    y[:, 1024:] = torch.randn(1, 36, 1024, generator=g)
    with torch.no_grad():
        _, mask = model.speaker_conformer(x)
        assert mask.shape == (1, 1, 529) and mask[0, 0, :511].all() and not mask[0, 0, 511:].any()
        torch.testing.assert_close(model.get_conditioning(x), model.get_conditioning(y))
        # Below 1024 frames every frame counts: changing the last one changes the latents.
        short = x[:, :300].clone()
        short2 = short.clone()
        short2[:, -3:] += 1.0
        assert not torch.allclose(model.get_conditioning(short), model.get_conditioning(short2))


@pytest.mark.parametrize("frames", [7, 120, 249])
def test_the_conditioners_input_convolution_as_one_product_computes_the_conv2d(frames, monkeypatch):
    """Conv2dSubsampling2.conv_as_product (our CPU engine): the same outputs as Conv2d + ReLU +
    the transposed flattening (upstream's order), up to summation order, odd and even lengths."""
    model = tiny_model()
    x = torch.randn(2, frames, 1024, generator=torch.Generator().manual_seed(frames))
    embed = model.conditioning_encoder.embed
    with torch.no_grad():
        conv_path = embed(x, torch.ones(2, 1, frames, dtype=torch.bool))
        monkeypatch.setattr(embed, "conv_as_product", True)
        product_path = embed(x, torch.ones(2, 1, frames, dtype=torch.bool))
    assert conv_path[0].shape == (2, (frames - 3) // 2 + 1, TINY.condition_module.output_size)
    for a, b in zip(conv_path, product_path):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_loader_is_strict_and_skips_text_head():
    model = tiny_model()
    sd = dict(model.state_dict())
    sd["text_head.weight"] = torch.zeros(TINY.number_text_tokens + 1, TINY.model_dim)
    sd["text_head.bias"] = torch.zeros(TINY.number_text_tokens + 1)
    assert set(KNOWN_UNUSED) <= set(sd)
    loaded = load_gpt_checkpoint({"model": sd}, TINY)
    torch.testing.assert_close(loaded.mel_head.weight, model.mel_head.weight)

    missing = {k: v for k, v in sd.items() if k != "final_norm.bias"}
    with pytest.raises(ValueError, match="final_norm.bias"):
        load_gpt_checkpoint(missing, TINY)
    with pytest.raises(ValueError, match="gpt.wte.weight"):
        load_gpt_checkpoint({**sd, "gpt.wte.weight": torch.zeros(1)}, TINY)


def test_engine_generation_params_are_accepted_and_defaults_match_upstream():
    from index_tts.engines.base import GenerationParams

    p = DecodeParams.from_any(GenerationParams(do_sample=False, num_beams=2, top_k=5, seed=11))
    assert (p.do_sample, p.num_beams, p.top_k, p.seed) == (False, 2, 5, 11)
    d = DecodeParams()
    assert (d.do_sample, d.num_beams, d.top_p, d.top_k, d.temperature, d.repetition_penalty, d.length_penalty,
            d.max_mel_tokens) == (True, 3, 0.8, 30, 0.8, 10.0, 0.0, 1500)


@pytest.mark.parametrize("top_k, top_p, min_keep", [(30, 0.8, 2), (30, 0.8, 1), (5, 0.3, 2), (200, 0.95, 1), (8194, 0.8, 2)])
def test_top_p_after_top_k_skips_the_sort_and_drops_the_same_entries(top_k, top_p, min_keep):
    """apply_top_p given top-k's result must equal the full-sort path, bit for bit, also where it has
    to fall back to the sort (ties at the k-th value, equal scores, NaN)."""
    gen = torch.Generator().manual_seed(top_k)
    for case in range(8):
        scores = torch.randn(3, 8194, generator=gen) * 3
        if case == 1:
            scores[:, :40] = 20.0  # ties at the top: at the k-th value and among the top k
        if case == 2:
            scores[1, 7] = float("nan")
        if case == 3:
            scores[0, :5] = torch.tensor([9.0, 8.0, 8.0, 7.0, 6.0])  # equal values inside the top k
        masked, top = apply_top_k(scores, top_k, min_keep)
        if case in (0, 1, 2) and top_k < 1000:  # the sort is skipped for distinct scores only
            assert generation._only_distinct_finite(masked, top.values) == (case == 0)
        fast, full = apply_top_p(masked, top_p, min_keep, top), apply_top_p(masked, top_p, min_keep)
        assert torch.equal(fast.isnan(), full.isnan())
        assert torch.equal(fast.nan_to_num(), full.nan_to_num())
        kept = torch.isfinite(full).sum(dim=-1)
        assert bool((kept >= min_keep).all()) and bool((kept <= max(top_k, min_keep) + 40).all())
        if case == 0:
            assert bool((kept < top_k).any()) or top_p > 0.9  # top-p did drop something
