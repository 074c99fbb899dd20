"""Our compiled CPU kernels (modules/native.py): the few-row linear kernel computes F.linear, in
fp32 and with bf16 weights, for any shape; the decode attention computes SDPA over the KV cache;
the C decode step computes the torch decode step. Where they cannot be built, `native` says why,
the panel kernel is never offered and the torch paths run."""

from __future__ import annotations

import contextlib
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from index_tts.modules import gpt_decode, huge_pages, kernels, kv_cache, multinomial, native, panel_linear, score_filter
from index_tts.modules.generation import DecodeParams, process_scores, process_scores_torch
from index_tts.modules.kv_cache import KVCache
from index_tts.modules.packed_linear import KernelLinear, apply_kernels, keep_bf16_copies, reduced_precision
from index_tts.modules.unified_voice import GPT2Body

needs_kernel = pytest.mark.skipif(not native.available(),
                                  reason=f"our kernels cannot be built here: {native.unavailable_reason()}")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(kernels.FORCE_ENV, raising=False)


def test_panels_hold_the_weight_exactly():
    w = torch.randn(101, 45)  # 101 outputs: the last panel is zero-padded
    panels = panel_linear.pack(w)
    assert panels.shape == (2, 45, 64)
    assert torch.equal(panels[1, :, :37], w[64:].t()) and torch.equal(panels[1, :, 37:], torch.zeros(45, 27))
    assert torch.equal(panel_linear.unpack(panels, 101), w)
    assert torch.equal(panel_linear.unpack(panel_linear.pack(w, torch.bfloat16), 101), w.bfloat16().float())
    w64 = torch.randn(101, 64)  # tiles where the CPU has AMX
    assert torch.equal(panel_linear.unpack(panel_linear.pack(w64, torch.bfloat16), 101), w64.bfloat16().float())


@needs_kernel
@pytest.mark.parametrize("k", [83, 96])  # 96: bf16 panels as AMX tiles where the CPU has AMX
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9, 17, 57])
@pytest.mark.parametrize("n_out", [16, 37, 64, 130, 200])
def test_the_kernel_computes_f_linear(rows, n_out, k):
    g = torch.Generator().manual_seed(rows * 100 + n_out)
    w, b, x = torch.randn(n_out, k, generator=g), torch.randn(n_out, generator=g), torch.randn(rows, k, generator=g)
    torch.testing.assert_close(panel_linear.linear(x, panel_linear.pack(w), b, n_out), F.linear(x, w, b),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(panel_linear.linear(x, panel_linear.pack(w), None, n_out), F.linear(x, w),
                               atol=1e-5, rtol=1e-5)
    # bf16 weights: exactly the rounded weights, multiplied and summed in fp32 (with the rows
    # rounded too on tiles, and only there)
    rows_used = panel_linear.rows_as_multiplied(x, torch.bfloat16)
    assert torch.equal(rows_used, x.bfloat16().float() if panel_linear.tiled(k) else x)
    torch.testing.assert_close(panel_linear.linear(x, panel_linear.pack(w, torch.bfloat16), b, n_out),
                               F.linear(rows_used, w.bfloat16().float(), b), atol=1e-5, rtol=1e-5)


@needs_kernel
def test_bf16_panels_are_tiles_only_where_the_cpu_has_amx():
    flags = set(kernels.cpu_info()["flags"])
    assert not panel_linear.tiled(83)  # tiles hold 32 k
    assert panel_linear.tiled(96) == ({"amx_tile", "amx_bf16"} <= flags)


@needs_kernel
def test_the_result_does_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(1)
    w, x = torch.randn(300, 256, generator=g), torch.randn(3, 256, generator=g)
    panels, threads = panel_linear.pack(w), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = panel_linear.linear(x, panels, None, 300)
        torch.set_num_threads(max(2, threads))
        assert native.library().panel_linear_threads() == max(2, threads)  # torch's OpenMP runtime
        many = panel_linear.linear(x, panels, None, 300)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)  # each output is one in-order sum, whichever thread computes it


@needs_kernel
@pytest.mark.parametrize("n", [1, 63, 64, 1000, 4099])
def test_the_bandwidth_floors_stream_sum_is_the_sum_with_any_thread_count(n):
    values = torch.arange(n, dtype=torch.float32) % 7 - 3  # small integers: every order sums exactly
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            assert native.library().panel_linear_stream_sum(values.data_ptr(), n) == values.sum().item()
    finally:
        torch.set_num_threads(threads)


@needs_kernel
def test_rows_must_be_float32():
    with pytest.raises(TypeError, match="float32"):
        panel_linear.linear(torch.zeros(3, 16, dtype=torch.float64), panel_linear.pack(torch.zeros(16, 16)), None, 16)


@needs_kernel
def test_a_layer_on_the_panel_kernel_keeps_its_keys_and_values(monkeypatch):
    monkeypatch.setenv(kernels.FORCE_ENV, "panel")
    model = nn.Sequential(nn.Linear(40, 24))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 40)
    with torch.no_grad():
        plain = model(x)
        apply_kernels(model, kernels.KernelTable(), rows=3)
        assert isinstance(model[0], KernelLinear) and model[0].kernel == "panel" and model[0].weight is None
        torch.testing.assert_close(model(x), plain, atol=1e-5, rtol=1e-5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_without_a_compiler_the_kernel_is_never_offered(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert not native.available()
    assert "no-such-compiler" in native.unavailable_reason()
    monkeypatch.setenv(kernels.FORCE_ENV, "panel")
    model = nn.Sequential(nn.Linear(40, 24))
    apply_kernels(model, kernels.KernelTable(), rows=3)
    assert model[0].kernel != "panel"  # forced, but not allowed here: the first allowed candidate


@needs_kernel
def test_the_library_is_built_once_per_machine_into_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_state", {})
    assert native.available()
    built = list((tmp_path / "cache" / "index_tts").glob("native-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native, "_build", lambda *a: pytest.fail("built a second time"))
    assert native.available() and built[0].stat().st_mtime_ns == stamp


def _cache(rows: int, heads: int, head_dim: int, max_len: int = 40, seed: int = 0) -> KVCache:
    cache = KVCache(2, rows, heads, max_len, head_dim, torch.float32, torch.device("cpu"))
    cache.kv.copy_(torch.randn(cache.kv.shape, generator=torch.Generator().manual_seed(seed)))
    return cache


@needs_kernel
@pytest.mark.parametrize("rows, heads, head_dim", [(1, 1, 16), (3, 20, 64), (4, 2, 128), (2, 3, 32)])
@pytest.mark.parametrize("pos", [0, 1, 16, 17, 38])
def test_the_decode_attention_computes_sdpa_over_the_cache(rows, heads, head_dim, pos):
    d = heads * head_dim
    qkv = torch.randn(rows, 3 * d, generator=torch.Generator().manual_seed(pos))
    ours, torchs = _cache(rows, heads, head_dim), _cache(rows, heads, head_dim)
    assert ours.native_attention
    got = ours.attend(1, qkv, pos, pos + 1)
    want = kv_cache._attend_torch(torchs.kv[1], None, qkv, pos, pos + 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # this position's keys and values written, and nothing else touched
    assert torch.equal(ours.kv, torchs.kv)
    assert torch.equal(ours.k[1, :, pos].reshape(rows, d), qkv[:, d:2 * d])
    assert torch.equal(ours.v[1, :, pos].reshape(rows, d), qkv[:, 2 * d:])


@needs_kernel
def test_the_decode_attention_is_exact_for_one_position_and_softmax_extremes():
    cache = _cache(2, 2, 16, max_len=4)
    qkv = torch.randn(2, 96)
    torch.testing.assert_close(cache.attend(0, qkv, 0, 1), qkv[:, 64:])  # one position: its value
    qkv[:, :32] *= 1e4   # scores far apart: the softmax is one-hot, no overflow or NaN
    out = cache.attend(0, qkv, 1, 2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, kv_cache._attend_torch(cache.kv[0].clone(), None, qkv, 1, 2), atol=1e-5, rtol=1e-4)


def test_caches_our_attention_cannot_read_use_torch():
    assert not KVCache(1, 1, 2, 4, 24, torch.float32, torch.device("cpu")).native_attention  # 24 % 16
    assert not KVCache(1, 1, 2, 4, 16, torch.float16, torch.device("cpu")).native_attention
    cache = KVCache(1, 1, 2, 4, 24, torch.float32, torch.device("cpu"), zeroed=True)
    qkv = torch.randn(1, 144)
    torch.testing.assert_close(cache.attend(0, qkv, 0, 1), qkv[:, 96:])


def _panel_body(reduced_kernel: str = "panel", layers: int = 3, dim: int = 64) -> GPT2Body:
    torch.manual_seed(3)
    body = GPT2Body(dim, layers, 4).eval()
    with torch.no_grad():
        for block in body.h:
            for parent, name in ((block.attn, "c_attn"), (block.attn, "c_proj"), (block.mlp, "c_fc"), (block.mlp, "c_proj")):
                layer = getattr(parent, name)
                layer.bias.normal_()
                setattr(parent, name, KernelLinear(layer.weight, layer.bias, True, "panel", reduced_kernel))
            block.ln_1.weight.normal_()
            block.ln_2.bias.normal_()
    return body


@needs_kernel
@pytest.mark.parametrize("reduced", [False, True])
def test_the_c_decode_step_computes_the_torch_step(reduced):
    body = _panel_body("panel_bf16")
    ours, torchs = (KVCache(3, 3, 4, 10, 16, torch.float32, torch.device("cpu"), zeroed=True) for _ in range(2))
    with torch.no_grad(), (reduced_precision() if reduced else contextlib.nullcontext()):
        blocks = gpt_decode.plan(body, ours)
        assert blocks is not None and blocks.bf16 == reduced
        # On AMX tiles the rows are rounded to bf16: the two paths' ~1e-7 differences in a layer
        # norm's output can round an input to the neighbouring bf16 (0.4 %) in one path only.
        tol = dict(atol=4e-4, rtol=4e-3) if reduced and panel_linear.tiled(64) else dict(atol=2e-5, rtol=1e-4)
        for pos in range(6):
            x = torch.randn(3, 64, generator=torch.Generator().manual_seed(pos)) * 3
            torch.testing.assert_close(body.step(x, ours, pos, pos + 1),
                                       body.ln_f(body.step_blocks(x, torchs, pos, pos + 1)), **tol)
            torch.testing.assert_close(ours.kv, torchs.kv, **tol)
    assert gpt_decode.plan(body, ours) is blocks  # made once per cache
    # no reference cycle: dropping the cache frees the plan (and its bf16 panels) at once
    plan_ref = weakref.ref(blocks)
    gc.disable()  # a cycle would only be freed by the collector
    try:
        del blocks, ours
        assert plan_ref() is None
    finally:
        gc.enable()


@needs_kernel
def test_the_c_step_is_the_same_whichever_thread_takes_a_panel():
    # Threads take panels from the back of each other's runs when they finish first, and more
    # threads than cores makes that happen at random: every run must give the same floats, and
    # the torch step's, for odd and even thread counts (a panel taken twice would add twice).
    body, threads = _panel_body(layers=4), torch.get_num_threads()
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0)) * 3
    want = body.ln_f(body.step_blocks(x, KVCache(4, 3, 4, 10, 16, torch.float32, torch.device("cpu"), zeroed=True), 0, 1))
    try:
        for count in (1, 3, 4):
            torch.set_num_threads(count)
            runs = []
            for _ in range(20):
                cache = KVCache(4, 3, 4, 10, 16, torch.float32, torch.device("cpu"), zeroed=True)
                with torch.no_grad():
                    runs.append(body.step(x, cache, 0, 1))
            assert all(torch.equal(r, runs[0]) for r in runs), count
            torch.testing.assert_close(runs[0], want, atol=2e-5, rtol=1e-4)
    finally:
        torch.set_num_threads(threads)


@needs_kernel
@pytest.mark.parametrize("stalled", [0, 1])
@pytest.mark.parametrize("phase, kind", [(5 * 1 + 4, "mlp.c_proj, adding into x"), (5 * 2 + 1, "attention"),
                                          (5 * 2 + 0, "c_attn, writing keys and values"), (5 * 3 + 3, "c_fc")])
def test_when_a_thread_stalls_the_other_computes_its_share_and_the_step_is_the_same(stalled, phase, kind):
    # The host can take a vCPU away for tens of milliseconds; the other thread then finishes the
    # stalled one's panel (or attention run) itself. Whoever finishes first writes it, once: a
    # second write would add mlp.c_proj twice into x, or garble the cache.
    # 128 wide, so that every linear layer has a panel for each of the 2 threads
    body, threads, lib = _panel_body(layers=4, dim=128), torch.get_num_threads(), native.library()
    x = torch.randn(3, 128, generator=torch.Generator().manual_seed(0)) * 3
    try:
        torch.set_num_threads(2)
        caches = [KVCache(4, 3, 4, 10, 32, torch.float32, torch.device("cpu"), zeroed=True) for _ in range(2)]
        with torch.no_grad():
            want = body.step(x, caches[0], 0, 1)
            lib.gpt_decode_helped()
            lib.gpt_decode_stall_for_tests(stalled, phase, 50_000)
            got = body.step(x, caches[1], 0, 1)
        assert lib.gpt_decode_helped() >= 1, kind  # the waiting thread did compute the stalled one's item
        assert torch.equal(got, want) and torch.equal(caches[1].kv, caches[0].kv), kind
    finally:
        lib.gpt_decode_stall_for_tests(-1, 0, 0)
        torch.set_num_threads(threads)


@needs_kernel
def test_the_c_step_applies_only_where_every_layer_streams_panels():
    body = _panel_body()
    cache = lambda: KVCache(3, 3, 4, 10, 16, torch.float32, torch.device("cpu"))
    assert gpt_decode.plan(body, cache()) is not None
    with reduced_precision():  # "panel" has no reduced choice: the fp32 panels still run
        assert gpt_decode.plan(body, cache()).bf16 is False
    block = body.h[1].mlp
    block.c_fc = KernelLinear(block.c_fc.dense_weight().t(), block.c_fc.bias, True, "default", "default")
    assert gpt_decode.plan(body, cache()) is None


def test_without_our_kernels_the_decode_step_runs_on_torch(monkeypatch):
    torch.manual_seed(0)
    body = GPT2Body(64, 2, 4).eval()
    x = torch.randn(3, 64)
    caches = [KVCache(2, 3, 4, 8, 16, torch.float32, torch.device("cpu"), zeroed=True) for _ in range(2)]
    with torch.no_grad():
        ours = [body.step(x, caches[0], pos, pos + 1) for pos in range(3)]  # our attention where built
        monkeypatch.setattr(native, "_state", {"lib": None, "reason": "RuntimeError: disabled for this test"})
        assert not native.available() and gpt_decode.plan(body, caches[1]) is None
        torchs = [body.step(x, caches[1], pos, pos + 1) for pos in range(3)]
    for a, b in zip(ours, torchs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@needs_kernel
def test_beams_that_share_their_past_attend_as_beams_with_copied_rows():
    """Beam search on a shared-history cache (no copies, `origin`) and on one that copies rows
    (`slot`): the same attention for every beam at every step, with our kernel and with torch's."""
    shared, copied = (KVCache(1, 3, 2, 12, 16, torch.float32, torch.device("cpu")) for _ in range(2))
    copied.shared_history = False
    assert shared.shared_history
    g = torch.Generator().manual_seed(5)
    for pos, parents in enumerate([None, [0, 0, 0], [1, 0, 2], [2, 2, 1], [0, 1, 2], [1, 1, 0], [2, 0, 0]]):
        if parents is not None:
            shared.reorder(parents, length=pos)
            copied.reorder(parents, length=pos)
        qkv = torch.randn(3, 96, generator=g)  # beam order
        rows = copied.rows_order
        got = shared.attend(0, qkv, pos, pos + 1)
        want = copied.attend(0, qkv if rows is None else qkv[rows], pos, pos + 1)
        want = want if copied.beam_order is None else want[copied.beam_order]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        by_torch = kv_cache._attend_torch(shared.kv[0].clone(), shared.origin, qkv, pos, pos + 1)
        torch.testing.assert_close(by_torch, want, atol=1e-5, rtol=1e-4)
    assert torch.count_nonzero(shared.origin[:, :6] != torch.arange(3, dtype=torch.int32)[:, None]) > 0
    with pytest.raises(RuntimeError, match="share their past"):
        shared.own_rows()


def _sparse_probs(count: int, nonzero: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    probs = torch.zeros(1, count)
    probs[0, torch.randperm(count, generator=gen)[:nonzero]] = torch.rand(nonzero, generator=gen) + 1e-4
    return probs / probs.sum()


@needs_kernel
@pytest.mark.parametrize("count, nonzero, n", [(24582, 90, 6), (8194, 30, 1), (700, 700, 5), (20, 7, 7), (1300, 2, 2)])
def test_our_draw_is_torchs_multinomial_and_advances_the_generator_alike(count, nonzero, n):
    assert multinomial.unavailable_reason() is None
    for seed in range(4):
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        torch.empty(seed * 250).exponential_(generator=ours)  # start anywhere in MT19937's 624 words
        torch.empty(seed * 250).exponential_(generator=theirs)
        for step in range(5):
            probs = _sparse_probs(count, nonzero, seed * 10 + step)
            drawn = multinomial._draw_native(probs, n, ours)
            assert drawn is not None
            assert torch.equal(drawn, torch.multinomial(probs, n, generator=theirs))
            assert torch.equal(ours.get_state(), theirs.get_state())
        # and the generator goes on as torch's: the next draw of anything agrees
        assert torch.equal(torch.rand(5, generator=ours), torch.rand(5, generator=theirs))


@needs_kernel
def test_draws_our_code_cannot_be_sure_of_are_left_to_torch_untouched():
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    tied = torch.tensor([[0.25, 0.25, 0.25, 0.25]])
    cases = [tied * 0, torch.tensor([[0.5, float("nan"), 0.5]]), torch.tensor([[0.5, -0.1, 0.6]]),
             _sparse_probs(50, 3, 0)]  # all zero, NaN, negative, fewer non-zero entries than asked for
    for probs in cases:
        assert multinomial._draw_native(probs, 4 if probs.size(1) > 3 else 2, gen) is None
        assert torch.equal(gen.get_state(), before)
    # draw() then answers as torch does, error included
    for probs in cases[:3]:
        with pytest.raises(RuntimeError):
            multinomial.draw(probs, 2, gen)
    theirs = torch.Generator().manual_seed(3)
    assert torch.equal(multinomial.draw(_sparse_probs(50, 3, 0), 3, gen),
                       torch.multinomial(_sparse_probs(50, 3, 0), 3, generator=theirs))


def test_the_draw_falls_back_to_torch_where_it_disagrees_or_cannot_run(monkeypatch):
    monkeypatch.setattr(multinomial, "_state", {})
    monkeypatch.setattr(multinomial, "_check", lambda: "differs")
    monkeypatch.setattr(multinomial, "_draw_native", lambda *a: pytest.fail("used a draw that failed its check"))
    probs = _sparse_probs(100, 20, 1)
    ours, theirs = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert multinomial.unavailable_reason() == "differs" or not native.available()
    assert torch.equal(multinomial.draw(probs, 3, ours), torch.multinomial(probs, 3, generator=theirs))
    monkeypatch.setattr(multinomial, "_state", {"reason": None})
    # float64 rows and non-CPU generators are not ours either
    assert torch.equal(multinomial.draw(probs.double(), 3, ours), torch.multinomial(probs.double(), 3, generator=theirs))


def _beam_scores(case: int, gen: torch.Generator) -> torch.Tensor:
    scores = torch.randn(3, 8194, generator=gen).log_softmax(-1)
    if case == 1:
        scores = (scores * 2).round() / 2  # ties everywhere, at the k-th value too
    if case == 2:
        scores[2, 100:] = float("-inf")  # fewer finite scores than k in one row
    if case == 3:
        scores[0, :4] = torch.tensor([-0.5, -0.75, -0.75, -1.0])  # equal values inside the top k
    if case == 4:
        scores[1, 9] = 0.0  # a score of zero: the penalty divides it
    return scores


@needs_kernel
@pytest.mark.parametrize("top_k, top_p, temperature, penalty", [
    (30, 0.8, 0.8, 10.0), (30, 1.0, 1.0, 1.0), (1, 0.9, 1.3, 1.2), (8194, 0.8, 0.8, 10.0), (50, 0.3, 0.5, 0.5)])
def test_our_score_filter_gives_torchs_floats(top_k, top_p, temperature, penalty):
    """score_filter.c against the torch ops it replaces, bit for bit: each branch (top k alone and
    distinct, ties that need torch's sort, fewer finite scores than k), min_keep above top_k."""
    assert score_filter.unavailable_reason() is None
    p = DecodeParams(do_sample=True, top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=penalty)
    gen = torch.Generator().manual_seed(top_k)
    for case in range(5):
        scores = _beam_scores(case, gen)
        seen = torch.rand(3, 8194, generator=gen) < 0.1
        for min_keep in (1, 2):
            got, want = score_filter.process(scores, seen, p, min_keep), process_scores_torch(scores, seen, p, min_keep)
            assert got is not None and torch.equal(got, want)
            assert int(torch.isfinite(got).sum(dim=-1).min()) >= min(min_keep, 100)
        if case == 0 and top_p < 1.0 and top_k > 1:
            assert int(torch.isfinite(got).sum(dim=-1).max()) < min(top_k, 8194)  # top-p dropped something


@needs_kernel
def test_our_score_filter_drops_a_cumulative_probability_equal_to_the_limit_as_torch():
    """top-p drops where the cumulative probability <= 1 - top_p (compared in float32): choose top_p
    so that the limit is exactly one of the cumulative sums, the boundary case random rows miss."""
    gen = torch.Generator().manual_seed(11)
    scores, seen = _beam_scores(0, gen), torch.zeros(3, 8194, dtype=torch.bool)
    masked = process_scores_torch(scores, seen, DecodeParams(top_p=1.0), 2)
    ascending = torch.sort(masked, dim=-1).values
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    limit = float(cumulative[0, -12])  # a float32 value
    p = DecodeParams(top_p=1 - limit)
    assert torch.tensor(1 - p.top_p, dtype=torch.float32) == cumulative[0, -12]
    got, want = score_filter.process(scores, seen, p, 2), process_scores_torch(scores, seen, p, 2)
    assert torch.equal(got, want)
    assert int(torch.isfinite(want[0]).sum()) == 11  # the entry at the limit itself was dropped


@needs_kernel
def test_scores_our_filter_cannot_take_are_left_to_torch(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    scores, seen = _beam_scores(0, gen), torch.zeros(3, 8194, dtype=torch.bool)
    with_nan = scores.clone()
    with_nan[1, 3] = float("nan")
    p = DecodeParams()
    assert score_filter.process(with_nan, seen, p, 2) is None
    assert torch.equal(process_scores(with_nan, seen, p, 2).isnan(), process_scores_torch(with_nan, seen, p, 2).isnan())
    for other in (DecodeParams(do_sample=False), DecodeParams(top_k=0)):  # not sampling with top-k: torch's
        assert score_filter.process(scores, seen, other, 2) is None
        assert torch.equal(process_scores(scores, seen, other, 2), process_scores_torch(scores, seen, other, 2))
    assert score_filter.process(scores.double(), seen, p, 2) is None
    # a filter that failed its check is never used
    monkeypatch.setattr(score_filter, "_state", {})
    monkeypatch.setattr(score_filter, "_check", lambda: "differs")
    monkeypatch.setattr(score_filter, "_process_native", lambda *a: pytest.fail("used a filter that failed its check"))
    assert score_filter.unavailable_reason() == "differs"
    assert torch.equal(process_scores(scores, seen, p, 2), process_scores_torch(scores, seen, p, 2))


def test_huge_page_memory_is_aligned_writable_and_plain_memory_without_thp(monkeypatch, tmp_path):
    block = huge_pages.empty(5 * 2**20 + 123)
    assert block.numel() == 5 * 2**20 + 123 and block.dtype == torch.uint8
    block.view(-1)[-1] = 7
    assert int(block[-1]) == 7
    if huge_pages.available():
        assert block.data_ptr() % huge_pages.PAGE == 0
    setting = tmp_path / "enabled"
    setting.write_text("always madvise [never]\n")
    monkeypatch.setattr(huge_pages, "THP_SETTING", setting)
    assert not huge_pages.available()
    assert huge_pages.empty(1000).numel() == 1000
    monkeypatch.setattr(huge_pages, "THP_SETTING", tmp_path / "missing")
    assert not huge_pages.available()


def test_huge_page_memory_is_plain_memory_where_the_kernel_refuses_the_advice(monkeypatch):
    monkeypatch.setattr(huge_pages.mmap, "MADV_HUGEPAGE", 12345)  # advice no kernel knows: EINVAL
    with pytest.raises(OSError):
        huge_pages.mmap.mmap(-1, 4096).madvise(12345)
    block = huge_pages._map(3 * 2**20)[2]
    block[-1] = 5
    assert block.numel() == 3 * 2**20 and int(block[-1]) == 5


@needs_kernel
def test_panels_moved_into_huge_pages_compute_the_same_and_free_the_old_ones(monkeypatch):
    torch.manual_seed(0)
    layers = [KernelLinear(torch.randn(n_out, 96), torch.randn(n_out), False, "panel", "panel") for n_out in (40, 64, 130)]
    x = torch.randn(3, 96)
    before = [layer(x) for layer in layers]
    old = [weakref.ref(layer.panels) for layer in layers]
    handed_back = []
    monkeypatch.setattr(huge_pages, "return_freed_memory", lambda: handed_back.append([ref() is None for ref in old]))
    monkeypatch.setattr(panel_linear, "TRIM_EVERY", 1)
    panel_linear.hold_in_huge_pages(layers)
    assert all(ref() is None for ref in old)
    # freed memory is handed back as the layers move (not only at the end): the peak holds one copy
    assert handed_back[0] == [True, False, False] and len(handed_back) == len(layers) + 1
    assert len({layer.panels.untyped_storage().data_ptr() for layer in layers}) == 1
    assert all(torch.equal(layer(x), want) for layer, want in zip(layers, before))


@needs_kernel
def test_the_engine_holds_the_gpts_panels_in_one_buffer(tiny_model_dir, monkeypatch):
    from index_tts.engines.indextts2 import IndexTTS2Engine

    monkeypatch.setenv(kernels.FORCE_ENV, "panel")
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cpu")
    panels = [m.panels for m in engine.gpt.modules() if isinstance(m, KernelLinear) and m.panels is not None]
    assert len(panels) > 4
    assert len({p.untyped_storage().data_ptr() for p in panels}) == 1
    if huge_pages.available():
        assert panels[0].data_ptr() % huge_pages.PAGE == 0



def test_the_reduced_modes_hand_their_dropped_bf16_copies_back(monkeypatch):
    handed_back = []
    monkeypatch.setattr(huge_pages, "return_freed_memory", lambda: handed_back.append(True))
    layer = KernelLinear(torch.randn(8, 16), None, False, "default", "bf16")
    with reduced_precision():
        pass
    assert handed_back == []  # nothing was copied, nothing to hand back
    with reduced_precision():
        layer._bf16_weights()
        with reduced_precision():
            pass
        assert layer._bf16 is not None and handed_back == []  # an inner block keeps them
    assert layer._bf16 is None and handed_back == [True]

    decoder = nn.Sequential(KernelLinear(torch.randn(8, 16), None, False, "default", "bf16"))
    keep_bf16_copies(decoder)  # the DiT's and BigVGAN's copies stay once made
    with reduced_precision():
        kept = decoder[0]._bf16_weights()
    assert decoder[0]._bf16 is kept and handed_back == [True]
    with reduced_precision():
        assert decoder[0]._bf16_weights() is kept  # not made again


@pytest.fixture
def kept_kv_buffer(monkeypatch, tmp_path):
    """A fresh process-wide KV buffer, with 2 MB pages on offer (the setting file says so)."""
    setting = tmp_path / "enabled"
    setting.write_text("always [madvise] never\n")
    monkeypatch.setattr(huge_pages, "THP_SETTING", setting)
    monkeypatch.setattr(kv_cache, "_KEPT", huge_pages.KeptBuffer())
    return kv_cache._KEPT


def test_successive_cpu_kv_caches_reuse_one_buffer_and_keep_the_first_page_of_each_row(kept_kv_buffer):
    page = huge_pages.PAGE
    first = KVCache(2, 3, 4, 1500, 128, torch.float32, torch.device("cpu"))  # 2 KB a position
    assert first.max_len == 2048 and first.origin.shape == (3, 2048)  # rounded: each row is 4 MB, two pages
    rows = first.kv.view(2, 2, 3, 2048, -1)
    assert all(rows[l, j, r, 0].data_ptr() % page == 0 for l in range(2) for j in range(2) for r in range(3))
    other = KVCache(2, 3, 4, 1500, 128, torch.float32, torch.device("cpu"))  # while the first holds it
    assert other.kv.untyped_storage().data_ptr() != first.kv.untyped_storage().data_ptr()
    rows[:, :, :, 3] = 2.0     # in each row's first page
    rows[:, :, :, 1500] = 1.0  # in its second
    address = first.kv.data_ptr()
    del first, rows, other
    gc.collect()
    again = KVCache(2, 1, 4, 1200, 128, torch.float32, torch.device("cpu"))  # fewer rows: the same buffer, a prefix
    assert again.kv.data_ptr() == address and again.max_len == 2048
    rows = again.kv.view(2, 2, 1, 2048, -1)
    assert bool((rows[:, :, :, 3] == 2.0).all())   # the first page of each row stayed
    assert not rows[:, :, :, 1500].any()           # the rest went back: zero pages now
    zeroed = KVCache(2, 3, 4, 1500, 128, torch.float32, torch.device("cpu"), zeroed=True)
    assert zeroed.max_len == 1500 and not zeroed.kv.any()


def test_kv_caches_are_plain_memory_without_2mb_pages(kept_kv_buffer, tmp_path):
    (tmp_path / "enabled").write_text("always madvise [never]\n")
    cache = KVCache(2, 3, 4, 1500, 128, torch.float32, torch.device("cpu"))
    cache.kv[-1, -1, -1, -1] = 1.5
    assert float(cache.kv[-1, -1, -1, -1, -1, -1]) == 1.5 and kept_kv_buffer._buffer is None


@needs_kernel
def test_a_beam_decode_in_a_reused_kv_buffer_gives_the_same_codes(kept_kv_buffer, monkeypatch, tmp_path):
    """The second decode's cache is the first's memory, full of its keys and values: nothing may
    read a position before this decode wrote it. 4 KB pages stand in for 2 MB ones, so that the
    tiny GPT's rows (128 bytes a position) fill more than one page and are dropped past their
    first."""
    from tests.test_generation import TINY, inputs, tiny_model
    from index_tts.modules.generation import generate

    model = tiny_model(seed=5)
    spk, text, emo = inputs()
    params = DecodeParams(max_mel_tokens=20)
    buffers = []
    setup_cache = model.setup_cache

    def recorded(*args, **kwargs):
        cache = setup_cache(*args, **kwargs)
        buffers.append(cache.kv.data_ptr())
        return cache

    model.setup_cache = recorded
    with torch.no_grad():
        (tmp_path / "enabled").write_text("always madvise [never]\n")
        plain = generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(7))
        assert kept_kv_buffer._buffer is None
        (tmp_path / "enabled").write_text("always [madvise] never\n")
        monkeypatch.setattr(huge_pages, "PAGE", 4096)
        runs = [generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(7)) for _ in range(3)]
    assert buffers[1] == buffers[2] == buffers[3] == kept_kv_buffer._buffer.data_ptr()
    assert all(torch.equal(run.codes, plain.codes) and run.sequence_score == plain.sequence_score for run in runs)
    assert TINY.model_dim * 4 == 128


@needs_kernel
@pytest.mark.parametrize("length", [1, 2, 5, 16, 17, 333])
@pytest.mark.parametrize("logscale", [True, False])
def test_the_one_pass_activation_computes_the_torch_ops(length, logscale):
    """BigVGAN's anti-aliased SnakeBeta (alias_free.c): the replicate edges, both filters and the
    snake as the seven torch ops compute them, for lengths shorter than the filters too."""
    from index_tts.modules.alias_free import Activation1d

    g = torch.Generator().manual_seed(length)
    act = Activation1d(6, logscale)
    with torch.no_grad():
        act.act.alpha.copy_(torch.randn(6, generator=g) * 0.5 + (0.0 if logscale else 1.0))
        act.act.beta.copy_(torch.randn(6, generator=g) * 0.5 + (0.0 if logscale else 1.5))
        x = torch.randn(3, 6, length, generator=g) * 4
        torch_ops = act(x)
        act.in_one_pass = True
        one_pass = act(x)
    assert one_pass.shape == x.shape
    torch.testing.assert_close(one_pass, torch_ops, atol=2e-5, rtol=1e-5)


def _bf16_roundings_agree(got: torch.Tensor, want: torch.Tensor) -> None:
    """got: bf16 from one rounding of `want` (fp32) summed in another order: nearly always the same
    bf16, never more than a unit in the last place away."""
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    assert (got == want.bfloat16()).float().mean() > 0.98
    torch.testing.assert_close(got.float(), want, rtol=2**-7, atol=1e-6)


@needs_kernel
@pytest.mark.parametrize("batches,frames,width", [(1, 1, 16), (2, 7, 48), (2, 33, 512)])
def test_the_fused_adaptive_norm_is_the_torch_norm_rounded_to_bf16(batches, frames, width):
    from index_tts.modules import dit_fused
    from index_tts.modules.dit import AdaptiveRMSNorm

    g = torch.Generator().manual_seed(frames)
    norm = AdaptiveRMSNorm(width)
    with torch.no_grad():
        for p in norm.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        x, c = torch.randn(batches, frames, width, generator=g) * 3, torch.randn(batches, 1, width, generator=g)
        want = norm(x, c)
        got = dit_fused.adaptive_rms_bf16(x, norm.project_layer(c), norm.norm.weight, norm.norm.eps)
    _bf16_roundings_agree(got, want)
    assert dit_fused.adaptive_rms_bf16(x[..., :15], torch.zeros(batches, 1, 30), norm.norm.weight[:15], 1e-5) is None


def test_the_fused_kernels_leave_tensors_off_the_cpu_to_torch():
    """Under CUDA's autocast the DiT's activations are bf16 too, on the GPU: never handed to C."""
    from index_tts.modules import dit_fused

    a = torch.empty(4, 32, dtype=torch.bfloat16, device="meta")
    assert dit_fused.swiglu_bf16(a, a) is None
    assert dit_fused.rope_heads_bf16(torch.empty(1, 3, 96, dtype=torch.bfloat16, device="meta"),
                                     torch.zeros(3, 8), torch.zeros(3, 8), heads=2) is None
    assert dit_fused.adaptive_rms_bf16(torch.empty(1, 3, 32, device="meta"), torch.empty(1, 1, 64, device="meta"),
                                       torch.ones(32), 1e-5) is None


@needs_kernel
def test_the_fused_gate_is_silu_times_the_product_rounded_to_bf16():
    from index_tts.modules import dit_fused

    g = torch.Generator().manual_seed(3)
    a, b = (torch.randn(37, 96, generator=g).mul(8).bfloat16() for _ in range(2))
    a[0, :4] = torch.tensor([-100.0, 100.0, 0.0, -0.0])  # far tails and zeros
    _bf16_roundings_agree(dit_fused.swiglu_bf16(a, b), F.silu(a.float()) * b.float())
    assert dit_fused.swiglu_bf16(a.float(), b) is None and dit_fused.swiglu_bf16(a[:, :9], b[:, :9]) is None


@needs_kernel
@pytest.mark.parametrize("queries_from", [0, 5])
def test_the_fused_rope_rotates_q_and_k_and_lays_out_the_heads(queries_from):
    from index_tts.modules import dit_fused
    from index_tts.modules.dit import apply_rope, rope_cos_sin

    g = torch.Generator().manual_seed(queries_from)
    B, T, heads, dh = 2, 13, 3, 32
    qkv = torch.randn(B, T, 3 * heads * dh, generator=g).bfloat16()
    cos, sin = rope_cos_sin(torch.arange(T), dh)
    q, k, v = dit_fused.rope_heads_bf16(qkv, cos, sin, heads, queries_from)
    assert q.shape == (B, heads, T - queries_from, dh) and k.shape == v.shape == (B, heads, T, dh)
    wq, wk, wv = qkv.float().view(B, T, 3, heads, dh).unbind(2)
    _bf16_roundings_agree(q, apply_rope(wq[:, queries_from:], cos[queries_from:], sin[queries_from:]).transpose(1, 2))
    _bf16_roundings_agree(k, apply_rope(wk, cos, sin).transpose(1, 2))
    assert torch.equal(v, wv.transpose(1, 2).bfloat16())  # values are only laid out


# ---------------------------------------------------------------------------------------------
# the DiT's attention on AMX tiles (dit_attention.c)


def _tile_attention_cases():
    g = torch.Generator().manual_seed(11)
    for B, H, tq, t in ((2, 8, 602, 602), (2, 3, 37, 45), (1, 1, 40, 70), (1, 2, 5, 16)):
        q, k, v = (torch.randn(B, H, n, 64, generator=g).mul(1.5).bfloat16() for n in (tq, t, t))
        # the first query's largest score on the last key (past the last whole vector of 16 keys)
        k[:, :, -1] = (q[:, :, 0].float() * 4).bfloat16()
        yield q, k, v


@pytest.mark.parametrize("case", range(4))
def test_the_tile_attention_is_torchs_attention_within_bf16_or_is_not_taken(case):
    """On a CPU with AMX: torch's fp32 attention up to bf16 rounding, no further from it than torch's
    own flash kernel on bf16 (shapes: the DiT's, partial query blocks, keys past a multiple of 32,
    one head split between threads, the largest score among the last keys). Elsewhere it declines."""
    from index_tts.modules import dit_attention

    q, k, v = list(_tile_attention_cases())[case]
    B, H, tq, _ = q.shape
    got = dit_attention.attention_bf16(q, k, v)
    if not dit_attention.available(k.size(2)):
        assert got is None
        return
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2).reshape(B, tq, H * 64)
    torch_bf16 = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, tq, H * 64).float()
    assert got.dtype == torch.bfloat16 and got.shape == (B, tq, H * 64)
    torch.testing.assert_close(got.float(), want, rtol=2**-7, atol=1e-2)  # as torch_bf16 (P is rounded)
    assert (got.float() - want).abs().mean() <= 1.05 * (torch_bf16 - want).abs().mean()


def test_the_tile_attention_leaves_other_shapes_and_devices_to_torch():
    from index_tts.modules import dit_attention

    q = torch.zeros(1, 2, 8, 32, dtype=torch.bfloat16)  # heads of 32
    assert dit_attention.attention_bf16(q, q, q) is None
    m = torch.empty(1, 2, 8, 64, dtype=torch.bfloat16, device="meta")
    assert dit_attention.attention_bf16(m, m, m) is None
    assert not dit_attention.available(10**6)  # more keys than one row of scores holds
