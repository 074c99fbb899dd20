"""Per-machine kernel choice, the balanced mode and the static decode step.

Exactness and identity only (never a time): the conformance fixtures pass with every kernel
candidate forced in exact mode; balanced mode chooses the same codes as exact mode; the
static-shape decode step chooses the same codes as the dynamic one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from index_tts import audio
from index_tts.bench.runner import mel_distance
from index_tts.bench.workloads import reference_signal
from index_tts.emotion import EmotionSpec
from index_tts.engines.base import QUALITY_MODES, EngineRequest, GenerationParams
from index_tts.engines.indextts2 import IndexTTS2Engine, Trace
from index_tts.modules import kernels, native
from index_tts.modules.alias_free import Activation1d
from index_tts.modules.conformer import Conv2dSubsampling2
from index_tts.modules.generation import DecodeParams, generate
from index_tts.modules.packed_linear import Bf16Conv, KernelLinear, apply_kernels, reduced_precision
from index_tts.modules.static_decode import StaticStepGPT
from index_tts.modules.unified_voice import Conv1D
from tests.conformance import runners  # noqa: F401  (registers the runners)
from tests.conformance.harness import RUNNERS, fixture_files, load_case
from tests.test_generation import inputs, tiny_model

PIPELINE_FIXTURES = [p for p in fixture_files() if p.stem.startswith("pipeline_")]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test measures into its own user cache, never the real ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(kernels.FORCE_ENV, raising=False)


# ---------------------------------------------------------------------------------------------
# the kernel table


def test_the_table_measures_each_class_once_and_caches_it_per_machine(tmp_path, monkeypatch):
    table = kernels.KernelTable()
    assert table.path.parent == tmp_path / "cache" / "index_tts"
    choice = table.linear(24, 40, 3, ("default", "onednn"))
    assert choice in ("default", "onednn")
    table.save()
    saved = json.loads(table.path.read_text())
    assert saved["machine"] == kernels.machine_key()
    assert set(saved["times"]["linear 24->40 rows 3"]) == {"default", "onednn"}

    again = kernels.KernelTable()  # read back: nothing is timed a second time
    monkeypatch.setattr(kernels, "linear_op", lambda *a: pytest.fail("a cached class was timed again"))
    assert again.linear(24, 40, 3, ("default", "onednn")) == choice
    other = dict(kernels.machine_key(), threads=kernels.machine_key()["threads"] + 1)
    assert kernels.cache_path(other) != table.path  # another thread count is another machine
    monkeypatch.setattr(native, "sources_digest", lambda: "another version of our C kernels")
    assert kernels.cache_path() != table.path  # changed kernels are timed again


def test_a_forced_candidate_wins_where_it_is_allowed(monkeypatch):
    table = kernels.KernelTable()
    monkeypatch.setenv(kernels.FORCE_ENV, "bf16")
    assert table.linear(8, 8, 3, ("default", "onednn", "bf16")) == "bf16"
    assert table.linear(8, 8, 3, ("default", "onednn")) == "default"  # not allowed: the first
    monkeypatch.setenv(kernels.FORCE_ENV, "panel, onednn_dense")
    assert table.linear(8, 8, 3, ("default", "onednn_dense")) == "onednn_dense"  # the first allowed of the list
    assert table.linear(8, 8, 3, ("default", "onednn_dense", "panel")) == "panel"
    monkeypatch.setenv(kernels.FORCE_ENV, "panel,turbo")
    with pytest.raises(ValueError, match=kernels.FORCE_ENV):
        table.linear(8, 8, 3, ("default",))


def test_bf16_is_read_from_the_cpu_flags():
    flags = set(kernels.cpu_info()["flags"])
    assert kernels.native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("candidate", kernels.CANDIDATES)
def test_each_kernel_computes_the_plain_layers_and_keeps_one_weight(candidate, monkeypatch):
    if candidate != "default" and not kernels.onednn_packing_available():
        pytest.skip("this torch build has no oneDNN packed linear")
    if candidate.startswith("panel") and not native.available():
        pytest.skip(f"the panel kernel cannot be built here: {native.unavailable_reason()}")
    monkeypatch.setenv(kernels.FORCE_ENV, candidate)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 40), nn.GELU(), Conv1D(40, 16), nn.Conv1d(16, 8, 3, padding=1))
    x = torch.randn(1, 3, 24)  # 3 rows, as a beam-3 decode step: every candidate is allowed
    run = lambda: model[3](model[2](model[1](model[0](x))).transpose(1, 2))
    with torch.no_grad():
        plain = run()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    where = model[0].weight.data_ptr()
    in_place = ("",) if candidate in ("onednn_dense", "bf16_cast") else ()  # only offered for weights that stay in place
    apply_kernels(model, kernels.KernelTable(), rows=3, reduced_ok=candidate != "onednn_dense",
                  conv_lengths={id(model[3]): 3}, in_place=in_place)
    assert isinstance(model[0], KernelLinear) and isinstance(model[2], KernelLinear)
    fp32 = "default" if candidate in kernels.REDUCED else candidate
    assert model[0].kernel == fp32
    if fp32 in ("default", "onednn_dense"):
        assert model[0].weight.data_ptr() == where  # the original weight, not a copy
    else:
        assert model[0].weight is None  # only the packed form is held
    with torch.no_grad():
        exact = run()
        with reduced_precision():
            reduced = run()
            held = model[0]._bf16 is not None
    torch.testing.assert_close(exact, plain, atol=1e-5, rtol=1e-5)  # outside reduced precision: fp32
    bf16_ran = (candidate in ("bf16", "bf16_cast") and kernels.native_bf16()) or candidate == "panel_bf16"
    assert held == (bf16_ran and candidate != "bf16_cast")  # a cast per call holds no copy
    assert isinstance(model[3], Bf16Conv) == (candidate == "bf16" and kernels.native_bf16())
    if bf16_ran:
        assert not torch.equal(reduced, exact)
        torch.testing.assert_close(reduced, plain, atol=0.1, rtol=0.05)
    else:
        torch.testing.assert_close(reduced, exact, atol=0, rtol=0)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in state.items()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def _decode_blocks(d: int = 64, heads: int = 4) -> nn.Module:
    from index_tts.modules.unified_voice import GPT2Body

    torch.manual_seed(0)
    body = GPT2Body(d, 2, heads).eval()
    for block in body.h:
        for layer in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
            layer.bias.data.normal_()
    return body


@pytest.mark.parametrize("winner", ["c_step", "layers"])
def test_the_decode_step_is_chosen_as_a_whole_and_the_c_step_gets_all_its_panels(winner):
    """A block's layers chosen one by one may split between kernels (MKL's 3-row kernel was a few
    percent ahead of the panels for two of the four shapes on an Intel Xeon), which turns the C step
    off; the step as a whole is its own class, and when the C step wins every block linear is put
    on panels, exact and reduced, whatever the per-layer times say."""
    from index_tts.engines import precision
    from index_tts.modules import gpt_decode
    from index_tts.modules.kv_cache import KVCache

    if not native.available():
        pytest.skip(f"the C step cannot be built here: {native.unavailable_reason()}")
    body, d = _decode_blocks(), 64
    table = kernels.KernelTable()
    allowed, reduced = precision.linear_candidates(3, reduced_ok=True)
    for n_in, n_out in ((d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)):  # per layer the panels lose by a little
        table.times[f"linear {n_in}->{n_out} rows 3"] = {c: 1.0 if c.startswith("panel") else 0.9 for c in allowed + reduced}
    key = f"decode step {d}x4 {precision.DECODE_STEP_BLOCKS} blocks rows 3"
    for suffix in ("fp32", "reduced"):
        table.times[f"{key} {suffix}"] = {"c_step": 1.0, "layers": 2.0} if winner == "c_step" else {"c_step": 2.0, "layers": 1.0}
    exact_step, reduced_step = precision._decode_step_kernels(body, table)
    assert (exact_step, reduced_step) == ((True, True) if winner == "c_step" else (False, False))

    x = torch.randn(3, d)
    with torch.no_grad():
        cache = KVCache(2, 3, 4, 8, d // 4, torch.float32, torch.device("cpu"), zeroed=True)
        want = body.step_blocks(x, cache, 0, 1)  # the plain layers' step
    blocks = ("h",)
    apply_kernels(body, table, rows=3, reduced_ok=True, panels=blocks if exact_step else (),
                  reduced_panels=blocks if reduced_step else ())
    layers = [m for m in body.modules() if isinstance(m, KernelLinear)]
    assert len(layers) == 8
    assert {m.kernel for m in layers} == ({"panel"} if winner == "c_step" else {"default"})
    assert {m.reduced_kernel for m in layers} == ({"panel_bf16"} if winner == "c_step" else {"default"})
    with torch.no_grad():
        cache = KVCache(2, 3, 4, 8, d // 4, torch.float32, torch.device("cpu"), zeroed=True)
        got = body.step(x, cache, 0, 1)
        assert (gpt_decode.plan(body, cache) is not None) == (winner == "c_step")
    torch.testing.assert_close(got, body.ln_f(want), atol=1e-5, rtol=1e-5)


def test_the_decode_step_class_is_timed_with_both_candidates():
    from index_tts.engines import precision

    if not native.available():
        pytest.skip(f"the C step cannot be built here: {native.unavailable_reason()}")
    table = kernels.KernelTable()
    allowed, reduced = precision.linear_candidates(3, reduced_ok=True)
    for n_in, n_out in ((64, 192), (64, 64), (64, 256), (256, 64)):  # mixed per-layer winners
        table.times[f"linear {n_in}->{n_out} rows 3"] = {c: 0.5 if c in ("default", "bf16") else 1.0 for c in allowed + reduced}
    exact_step, reduced_step = precision._decode_step_kernels(_decode_blocks(), table)
    key = f"decode step 64x4 {precision.DECODE_STEP_BLOCKS} blocks rows 3"
    timed = [table.times[f"{key} fp32"]] + ([table.times[f"{key} reduced"]] if "panel_bf16" in reduced else [])
    for row in timed:
        assert set(row) == {"c_step", "layers"} and all(t > 0 for t in row.values())
    assert exact_step == (table.times[f"{key} fp32"]["c_step"] < table.times[f"{key} fp32"]["layers"])
    saved = json.loads(table.path.read_text())["times"]
    assert saved[f"{key} fp32"] == table.times[f"{key} fp32"]


FORCED_RUNS = ["default", "onednn", "onednn4,onednn_dense", "panel", "bf16_product,bf16,panel_bf16,bf16_cast"]


def test_the_forced_runs_cover_every_candidate():
    assert {c for run in FORCED_RUNS for c in run.split(",")} == set(kernels.CANDIDATES)


@pytest.mark.parametrize("candidate", FORCED_RUNS)
def test_the_pipeline_fixtures_pass_with_each_kernel_forced(candidate, monkeypatch):
    """Exact mode through the whole engine with every layer on one candidate, or the first of a
    list that the layer allows (the reduced ones must not leak into exact mode)."""
    assert PIPELINE_FIXTURES, "no pipeline fixtures found"
    monkeypatch.setenv(kernels.FORCE_ENV, candidate)
    for path in PIPELINE_FIXTURES:
        case = load_case(path)
        RUNNERS[case["kind"]](case)


# ---------------------------------------------------------------------------------------------
# balanced mode


def test_balanced_is_a_quality_mode_between_exact_and_fast():
    assert QUALITY_MODES == ("exact", "balanced", "fast")
    GenerationParams(quality="balanced").validate()


@pytest.mark.parametrize("reduced", ["bf16", "panel_bf16", "bf16_product,bf16"])
def test_balanced_mode_keeps_exact_codes_and_only_fast_reduces_the_gpt(reduced, tiny_model_dir, monkeypatch):
    monkeypatch.setenv(kernels.FORCE_ENV, reduced)  # every layer on this reduced candidate where allowed
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cpu")
    voice = engine.voice_prompt(reference_signal(3.0), 24000, key="balanced-test")
    tokens = [torch.tensor([[5, 9, 14, 3, 22, 8]], dtype=torch.int32)]
    out = {}
    for mode in ("exact", "balanced", "fast"):
        trace = Trace({})
        params = GenerationParams(seed=3, max_mel_tokens=40, quality=mode)
        emovec = engine.emotion_vector(voice, EmotionSpec())
        wav, _ = engine.synthesize_tokens(voice, emovec, tokens, params, torch.Generator().manual_seed(3), trace=trace)
        out[mode] = (trace.values["seg0_codes"].tolist(), wav.to(torch.int16).numpy(), trace.values["seg0_latent"])
    assert out["balanced"][0] == out["exact"][0]  # the GPT is exact in balanced mode
    assert torch.equal(out["balanced"][2], out["exact"][2])
    assert len(out["exact"][0][0]) > 3
    exact, balanced = out["exact"][1], out["balanced"][1]
    assert exact.size == balanced.size
    dit_reduced = "bf16" in reduced.split(",") and kernels.native_bf16()
    gpt_reduced = dit_reduced or (reduced == "panel_bf16" and native.available())
    if dit_reduced:
        assert not np.array_equal(exact, balanced)  # bf16 really ran
        assert mel_distance(exact, balanced)["log_mel_corr"] > 0.95
    else:
        assert np.array_equal(exact, balanced)  # nothing reduced in the DiT/BigVGAN: balanced computes as exact
    if gpt_reduced and out["fast"][0] == out["exact"][0]:  # fast ran the GPT on bf16 weights
        assert not torch.equal(out["fast"][2], out["exact"][2])
        torch.testing.assert_close(out["fast"][2], out["exact"][2], atol=0.1, rtol=0.05)
    elif not gpt_reduced:
        assert out["fast"][0] == out["exact"][0] and torch.equal(out["fast"][2], out["exact"][2])


def test_fast_builds_its_own_voice_prompt_with_one_w2v_pass(tiny_model_dir, monkeypatch):
    """Fast mode's voice prompt: one w2v-BERT pass (the emotion reference's embedding and emotion
    vector are the speaker's), in bf16 where native, cached apart from the exact prompt, which
    stays as upstream's (two passes over two resamplings)."""
    monkeypatch.setenv(kernels.FORCE_ENV, "bf16,panel_bf16,bf16_cast")
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cpu")
    assert all(m.conv_as_product for m in engine.gpt.modules() if isinstance(m, Conv2dSubsampling2))
    assert all(m.in_one_pass == native.available() for m in engine.bigvgan.modules() if isinstance(m, Activation1d))
    passes = []  # the batch size of each w2v-BERT pass
    forward = engine.w2v.forward
    monkeypatch.setattr(engine.w2v, "forward", lambda *a, **k: (passes.append(a[0].size(0)), forward(*a, **k))[1])
    wav = reference_signal(3.0)
    exact = engine.voice_prompt(wav, 24000, key="voice")
    assert passes == [2] and not torch.equal(exact.emo_cond_emb, exact.spk_cond_emb)  # two resamplings, one batch
    fast = engine.voice_prompt(wav, 24000, key="voice", quality="fast")
    assert passes == [2, 1]
    assert fast.emo_cond_emb is fast.spk_cond_emb and fast.voice_emovec is fast.base_emovec
    assert engine.voice_prompt(wav, 24000, key="voice") is exact
    assert engine.voice_prompt(wav, 24000, key="voice", quality="fast") is fast and passes == [2, 1]
    if kernels.native_bf16():  # every front-end linear cast to bf16: close to exact, not equal
        assert not torch.equal(fast.spk_cond_emb, exact.spk_cond_emb)
        err = (fast.spk_cond_emb - exact.spk_cond_emb).norm() / exact.spk_cond_emb.norm()
        assert err < 0.05, err
    else:
        assert torch.equal(fast.spk_cond_emb, exact.spk_cond_emb)
    # a fast request asks for the fast prompt
    asked = []
    monkeypatch.setattr(engine, "voice_prompt", lambda *a, **k: (asked.append(k.get("quality")), fast)[1])
    request = EngineRequest(text="hello there", voice=wav, voice_sr=24000, voice_key="voice",
                            generation=GenerationParams(quality="fast", seed=1, max_mel_tokens=20))
    assert engine.synthesize(request).audio.size > 0 and asked == ["fast"]


def test_the_speaker_and_emotion_w2v_passes_give_as_one_batch_what_they_give_alone(tiny_model_dir):
    """Exact mode's two w2v-BERT passes (the same reference resampled two ways) run as one batch of
    two where their lengths agree: each embedding as its own pass computes it. Of unequal lengths
    (an emotion reference of its own) they run apart."""
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cpu")
    wav = reference_signal(3.0)
    _, speaker_16k = audio.speaker_audio(wav, 24000)
    speaker, emotion = audio.w2v_features(speaker_16k), audio.w2v_features(audio.emotion_audio(wav, 24000))
    assert speaker[0].shape == emotion[0].shape and not torch.equal(speaker[0], emotion[0])
    with torch.no_grad():
        alone = engine.w2v(*speaker), engine.w2v(*emotion)
        batched = engine._w2v_pair(speaker, emotion)
        shorter = audio.w2v_features(audio.emotion_audio(wav[: len(wav) // 2], 24000))
        apart = engine._w2v_pair(speaker, shorter)
    for got, want in zip(batched, alone):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert apart[1].size(1) < apart[0].size(1)
    torch.testing.assert_close(apart[0], alone[0], atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# the static decode step


@pytest.mark.parametrize("params", [
    DecodeParams(do_sample=False, num_beams=1, max_mel_tokens=14),
    DecodeParams(do_sample=False, num_beams=3, max_mel_tokens=14),
    DecodeParams(do_sample=True, num_beams=3, max_mel_tokens=14, seed=5),
], ids=["greedy", "beam", "beam-sample"])
def test_the_static_step_chooses_the_same_codes(params):
    model = tiny_model(logit_scale=3.0)
    spk, text, emo = inputs()
    dynamic = generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(3))
    static = generate(StaticStepGPT(model), spk, text, emo, params, generator=torch.Generator().manual_seed(3))
    assert static.codes.tolist() == dynamic.codes.tolist()
    assert static.codes.size(1) > 3


def test_the_static_step_keeps_its_buffers_across_steps():
    model = tiny_model()
    static = StaticStepGPT(model)
    spk, text, emo = inputs()
    generate(static, spk, text, emo, DecodeParams(do_sample=False, num_beams=3, max_mel_tokens=6))
    buffers = (static.codes, static.visible)
    static.decode_step(torch.zeros(3, dtype=torch.long), mel_pos=3, input_pos=static._cache.max_len - 1, cache=static._cache)
    assert static.codes is buffers[0] and static.visible is buffers[1]  # written in place, never replaced
    assert bool(static.visible.all())


def test_doctor_shows_the_machine_and_the_measured_choices():
    from index_tts.modules.kernels import report_lines

    assert "not measured yet" in "\n".join(report_lines())
    table = kernels.KernelTable()
    table.linear(16, 24, 3, ("default", "onednn") if kernels.onednn_packing_available() else ("default",))
    table.times.setdefault("linear 16->24 rows 3", {"default": 1.0})
    table.dirty = True
    table.save()
    text = "\n".join(report_lines())
    assert kernels.cpu_info()["cpu"] in text and "native bf16" in text
    assert "linear 16->24 rows 3:" in text and "-> exact" in text


@pytest.mark.parametrize("kernel_size,dilation", [(5, 2), (1, 1)])
@pytest.mark.parametrize("reduced", ["bf16", "bf16_product"])
def test_a_weight_normed_wavenet_conv_runs_in_bf16_only_in_the_reduced_modes(reduced, kernel_size, dilation):
    """oneDNN's bf16 convolution ("bf16") or the convolution as one product of the frames' taps
    ("bf16_product"): inside `reduced_precision()` within bf16 error of the fp32 convolution."""
    from index_tts.modules.wavenet import SConv1d

    torch.manual_seed(0)
    conv = SConv1d(16, 32, kernel_size, dilation=dilation)
    x = torch.randn(2, 16, 40)
    with torch.no_grad():
        plain = conv(x)
        conv.reduced_kernel = reduced
        outside = conv(x)
        with reduced_precision():
            inside = conv(x)
    assert torch.equal(outside, plain)  # exact mode never sees bf16
    assert inside.dtype == torch.float32 and inside.shape == plain.shape and not torch.equal(inside, plain)
    torch.testing.assert_close(inside, plain, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "torch-ops"])
@pytest.mark.parametrize("attention", ["bf16", "bf16_sdpa"])
def test_the_dit_attention_and_feed_forward_run_in_bf16_only_in_the_reduced_modes(attention, fused, monkeypatch):
    """The DiT with every bf16 choice taken (linears kept in bf16 between them, bf16 attention of
    either kind; the steps between them fused in C where our kernels are, else torch's ops):
    outside `reduced_precision()` it computes as the plain fp32 model, inside within bf16 error."""
    from index_tts.engines.precision import _attention_kernels
    from index_tts.modules import dit_fused
    from tests.test_s2mel import tiny_model as tiny_s2mel

    fused_calls = []
    if fused:
        for name in ("adaptive_rms_bf16", "swiglu_bf16", "rope_heads_bf16"):
            kernel = getattr(dit_fused, name)
            monkeypatch.setattr(dit_fused, name, lambda *a, _k=kernel, _n=name: (fused_calls.append(_n), _k(*a))[1])
    else:
        monkeypatch.setattr(dit_fused, "available", lambda: False)

    plain = tiny_s2mel().cfm
    model = tiny_s2mel().cfm
    monkeypatch.setenv(kernels.FORCE_ENV, "bf16")
    table = kernels.KernelTable()
    apply_kernels(model, table, rows=64, reduced_ok=True)
    _attention_kernels(model, table)
    attention_layers = [layer for layer in model.modules() if hasattr(layer, "n_head")]
    bf16_ran = kernels.native_bf16() and kernels.onednn_packing_available()
    assert {layer.reduced_kernel for layer in attention_layers} == {"bf16" if bf16_ran else "default"}  # the forced one
    for layer in attention_layers if bf16_ran else ():
        layer.reduced_kernel = attention
    g = torch.Generator().manual_seed(4)
    B, T = 2, 37
    args = (torch.randn(B, 80, T, generator=g), torch.randn(B, 80, T, generator=g), torch.tensor([T, 30]),
            torch.tensor([0.4, 0.4]), torch.randn(B, 8, generator=g), torch.randn(B, T, 16, generator=g))
    with torch.no_grad():
        expected, outside = plain.estimator(*args), model.estimator(*args)
        sdpa, seen = torch.nn.functional.scaled_dot_product_attention, []
        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                            lambda q, *a, **k: seen.append(q.dtype) or sdpa(q, *a, **k))
        with reduced_precision():
            inside = model.estimator(*args)
    torch.testing.assert_close(outside, expected, atol=1e-6, rtol=1e-6)  # exact mode: fp32 kernels
    assert set(seen) == ({torch.bfloat16} if bf16_ran and attention == "bf16_sdpa" else set() if bf16_ran else {torch.float32})
    if bf16_ran:
        assert inside.dtype == torch.float32 and not torch.equal(inside, outside)
        torch.testing.assert_close(inside, expected, atol=0.05, rtol=0.05)
        assert (inside - expected).norm() < 0.02 * expected.norm()
    else:
        assert torch.equal(inside, outside)
    depth = len(attention_layers)  # two norms, a rotation and a gate per block, where they ran
    assert sorted(set(fused_calls)) == (sorted(["adaptive_rms_bf16", "rope_heads_bf16", "swiglu_bf16"])
                                        if bf16_ran and fused and native.available() else [])
    assert len(fused_calls) == (4 * depth if fused_calls else 0)


def test_an_unmasked_attention_is_the_attention_with_every_key_allowed():
    """The DiT passes no mask when every frame is a key (one utterance): torch's kernels run faster
    so, and the result is the masked one's."""
    from index_tts.modules.dit import Attention, DiTConfig, rope_cos_sin

    torch.manual_seed(6)
    attention = Attention(DiTConfig(hidden_dim=32, num_heads=2))
    x = torch.randn(2, 11, 32)
    cos, sin = rope_cos_sin(torch.arange(11), 16)
    with torch.no_grad():
        masked = attention(x, cos, sin, torch.ones(1, 1, 1, 11, dtype=torch.bool), queries_from=3)
        unmasked = attention(x, cos, sin, None, queries_from=3)
    torch.testing.assert_close(unmasked, masked, atol=1e-6, rtol=1e-6)


def test_the_wavenet_conditioning_layer_on_one_frame_is_the_convolution():
    """The 1x1 conditioning convolution on the one-frame time embedding runs as a matrix-vector
    product: the convolution's numbers, weight-normed (its hook computing the weight) or fixed,
    and in bf16 inside `reduced_precision()`."""
    from index_tts.modules.wavenet import SConv1d
    from index_tts.modules.weight_norm import weights_computed_once

    torch.manual_seed(7)
    conv = SConv1d(16, 48, 1)
    with torch.no_grad():
        conv.conv.conv.weight_g.mul_(1.5)  # the hook's g * v / |v| now differs from the weight built at init
        g = torch.randn(2, 16, 1)
        w = conv.conv.conv.weight_g * conv.conv.conv.weight_v / conv.conv.conv.weight_v.norm(dim=(1, 2), keepdim=True)
        want = F.conv1d(g, w, conv.conv.conv.bias)
        torch.testing.assert_close(conv(g), want, atol=1e-6, rtol=1e-6)
        with weights_computed_once(conv):
            torch.testing.assert_close(conv(g), want, atol=1e-6, rtol=1e-6)
            conv.reduced_kernel = "bf16"
            with reduced_precision():
                reduced = conv(g)
        longer = torch.randn(2, 16, 5)
        torch.testing.assert_close(conv(longer), F.conv1d(longer, w, conv.conv.conv.bias), atol=1e-6, rtol=1e-6)
    assert reduced.dtype == torch.float32 and not torch.equal(reduced, want)
    torch.testing.assert_close(reduced, want, atol=0.05, rtol=0.02)


def test_bf16_attention_matches_fp32_attention_with_padded_keys():
    from index_tts.modules.dit import bf16_attention

    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(3, 4, 50, 16, generator=g) for _ in range(3))
    mask = torch.ones(3, 1, 1, 50, dtype=torch.bool)
    mask[1, ..., 41:] = False  # the second item's last 9 frames are padding
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = bf16_attention(q, k, v, mask)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected, atol=0.03, rtol=0.03)
    unmasked = bf16_attention(q, k, v, torch.ones_like(mask))
    assert (unmasked[1].float() - expected[1]).abs().max() > 0.05  # the mask really applied
    last = bf16_attention(q[:, :, 30:], k, v, mask)  # fewer queries than keys: the last 20 rows
    torch.testing.assert_close(last.float(), expected[:, :, 30:], atol=0.03, rtol=0.03)


def _attention_64(heads: int = 2):
    from index_tts.modules.dit import Attention, DiTConfig

    layer = Attention(DiTConfig(hidden_dim=64 * heads, num_heads=heads))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * p.size(-1) ** -0.5)
    return layer.eval()


def test_the_dit_attention_takes_the_tiles_only_in_the_reduced_modes_and_without_a_mask(monkeypatch):
    """reduced_kernel="bf16_tiles": exact mode keeps torch's fp32 kernel; the reduced modes call the
    tile kernel where it runs (AMX) for an unmasked attention, torch's bf16 kernel otherwise, each
    within bf16 error of fp32."""
    from index_tts.modules import dit_attention
    from index_tts.modules.dit import rope_cos_sin

    layer = _attention_64()
    calls = []
    kernel = dit_attention.attention_bf16
    monkeypatch.setattr(dit_attention, "attention_bf16", lambda *a: calls.append(1) or kernel(*a))
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 50, 128, generator=g)
    cos, sin = rope_cos_sin(torch.arange(50), 64)
    mask = torch.ones(2, 1, 1, 50, dtype=torch.bool)
    mask[1, ..., 40:] = False
    with torch.no_grad():
        fp32, fp32_masked = layer(x, cos, sin, None), layer(x, cos, sin, mask)
        layer.reduced_kernel = "bf16_tiles"
        assert torch.equal(layer(x, cos, sin, None), fp32) and not calls  # outside reduced_precision
        with reduced_precision():
            tiles, masked = layer(x, cos, sin, None), layer(x, cos, sin, mask)
    assert len(calls) == 1  # the masked call never reached it
    for got, want in ((tiles, fp32), (masked, fp32_masked)):
        assert not torch.equal(got.float(), want)
        torch.testing.assert_close(got.float(), want, atol=0.03, rtol=0.03)
    if kernel(*(torch.zeros(1, 1, 4, 64, dtype=torch.bfloat16),) * 3) is None:  # no AMX here: torch's bf16 kernel
        layer.reduced_kernel = "bf16_sdpa"
        with torch.no_grad(), reduced_precision():
            assert torch.equal(layer(x, cos, sin, None), tiles)


def test_the_tile_attention_is_a_candidate_only_where_it_runs():
    from index_tts.engines.precision import ATTENTION_KERNELS, _attention_kernels
    from index_tts.modules import dit_attention

    model = torch.nn.ModuleList([_attention_64(heads=8), _attention_64(heads=8)])
    table = kernels.KernelTable()
    key = "attention 2x8x602x64"
    table.times[key] = {c: 1.0 for c in ATTENTION_KERNELS} | {"bf16_tiles": 0.5}  # preset: the tiles fastest
    chosen = _attention_kernels(model, table)
    if not kernels.native_bf16():
        assert chosen == {} and {m.reduced_kernel for m in model} == {"default"}
        return
    expected = "bf16_tiles" if dit_attention.available(602) else "default"
    assert {m.reduced_kernel for m in model} == {expected}
    assert chosen == ({"bf16_tiles attention (reduced modes)": 2} if expected == "bf16_tiles" else {})
