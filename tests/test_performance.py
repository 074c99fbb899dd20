"""The fast paths and the benchmark: packed linears, forced code counts, the original-style decode
loop, the fast preset, per-segment streaming, and `python -m index_tts.bench` on the tiny model.

Nothing here asserts a time: speed is what `python -m index_tts.bench` reports
(docs/performance.md). These tests check that the fast paths compute what the plain ones do,
and that the benchmark measures the work it claims to.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from index_tts.bench import machine
from index_tts.bench.__main__ import main as bench_main
from index_tts.bench.original import LegacyGPT
from index_tts.bench.workloads import WORKLOADS, reference_signal
from index_tts.emotion import EmotionSpec
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.engines.indextts2 import CFM_STEPS, FAST_CFM_STEPS, SAMPLE_RATE, IndexTTS2Engine
from index_tts.modules.generation import DecodeParams, generate
from index_tts.modules.kernels import native_bf16
from index_tts.modules.packed_linear import PackedLinear, onednn_packing_available, pack_linears
from index_tts.modules.unified_voice import Conv1D
from tests.test_generation import TINY, inputs, tiny_model

needs_onednn = pytest.mark.skipif(not onednn_packing_available(), reason="this torch build has no oneDNN packed linear")


# ---------------------------------------------------------------------------------------------
# packed linears


@needs_onednn
def test_packed_linears_compute_the_plain_layers_and_keep_the_state_dict():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 40), nn.GELU(), Conv1D(40, 16), nn.Linear(16, 8, bias=False))
    x = torch.randn(3, 5, 24)
    with torch.no_grad():
        plain = model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    assert pack_linears(model) == 3
    assert all(isinstance(model[i], PackedLinear) for i in (0, 2, 3))
    with torch.no_grad():
        packed = model(x)
    assert packed.shape == plain.shape == (3, 5, 8)
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    assert all(model[i].weight is None for i in (0, 2, 3))  # one copy: the unpacked original is gone
    assert model.state_dict().keys() == state.keys()  # the same keys, unpacked on saving
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


@needs_onednn
def test_packing_the_gpt_keeps_generation_identical():
    model = tiny_model()
    spk, text, emo = inputs()
    params = DecodeParams(do_sample=False, num_beams=3, max_mel_tokens=12)
    plain = generate(model, spk, text, emo, params)
    pack_linears(model)
    packed = generate(model, spk, text, emo, params)
    assert packed.codes.tolist() == plain.codes.tolist()


# ---------------------------------------------------------------------------------------------
# forced code counts and the original-style decode loop


@pytest.mark.parametrize("num_beams", [1, 3])
def test_min_new_tokens_forbids_the_stop_code_until_the_count(num_beams):
    model = tiny_model()
    with torch.no_grad():
        model.mel_head.bias[TINY.stop_mel_token] = 1e4  # the model always wants to stop at once
    spk, text, emo = inputs()
    base = DecodeParams(do_sample=False, num_beams=num_beams, max_mel_tokens=12)
    assert generate(model, spk, text, emo, base).code_len == 0
    forced = generate(model, spk, text, emo, replace(base, min_new_tokens=7))
    assert forced.code_len == 7 and forced.codes[0, 7] == TINY.stop_mel_token
    exact = generate(model, spk, text, emo, replace(base, min_new_tokens=12))
    assert exact.code_len == 12 and TINY.stop_mel_token not in exact.codes[0].tolist()


@pytest.mark.parametrize("params", [
    DecodeParams(do_sample=False, num_beams=1, max_mel_tokens=14),
    DecodeParams(do_sample=False, num_beams=3, max_mel_tokens=14),
    DecodeParams(do_sample=True, num_beams=3, max_mel_tokens=14, seed=5),
], ids=["greedy", "beam", "beam-sample"])
def test_the_original_style_loop_does_the_same_decoding(params):
    """Growing torch.cat cache, beam re-indexing, eager attention: same codes as our decoder, so
    the benchmark's side-by-side ratio compares the same work."""
    model = tiny_model(logit_scale=3.0)
    spk, text, emo = inputs()
    ours = generate(model, spk, text, emo, params, generator=torch.Generator().manual_seed(3))
    legacy = generate(LegacyGPT(model), spk, text, emo, params, generator=torch.Generator().manual_seed(3))
    assert legacy.codes.tolist() == ours.codes.tolist()
    assert legacy.codes.size(1) > 3


# ---------------------------------------------------------------------------------------------
# machine probes


def test_cpu_window_attributes_our_own_work_to_us():
    """Burn 0.5 s of our own CPU time (whatever the machine's load): the window, read from
    /proc, must count that much for us, at tick resolution."""
    with machine.cpu_window() as w:
        start = time.process_time()
        while time.process_time() - start < 0.5:
            pass
        used = time.process_time() - start
    own_cpu_s = w.own_cores * w.wall_s
    assert abs(own_cpu_s - used) < 0.05 + 2 / machine.CLOCK_TICKS
    assert w.foreign_cores >= 0.0


def test_reference_signal_is_the_baseline_formula():
    x = reference_signal(5.0)
    assert x.dtype == np.float32 and x.size == 120000
    assert abs(float(np.abs(x).max()) - 0.5) < 1e-4  # peak-normalised to 0.5, 16-bit quantised
    assert np.allclose(x * 32768, np.round(x * 32768))


def test_workload_ids_wrap_into_small_vocabularies():
    w = WORKLOADS["ref5s-100tok"]
    assert w.text_ids(12000) == [list(range(1000, 1020))]
    small = w.text_ids(256)[0]
    assert len(small) == 20 and min(small) >= 2 and max(small) < 256


# ---------------------------------------------------------------------------------------------
# the engine: fast preset and streaming


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return IndexTTS2Engine.load(tiny_model_dir, device="cpu")


def _request(quality="exact", text="It was a cold day. The clocks were striking thirteen. He went in.") -> EngineRequest:
    voice = reference_signal(3.5)
    return EngineRequest(text=text, voice=voice, voice_sr=24000, voice_key="perf-test-voice", emotion=EmotionSpec(),
                         generation=GenerationParams(max_mel_tokens=50, max_text_tokens_per_segment=20,
                                                     seed=7, quality=quality))


def test_quality_must_be_a_known_preset():
    with pytest.raises(ValueError, match=r"generation\.quality"):
        GenerationParams(quality="turbo").validate()
    GenerationParams(quality="fast").validate()


def test_segments_stream_in_order_and_join_to_the_output(engine):
    seen = []
    out = engine.synthesize(_request(), on_segment=lambda i, pcm, sr: seen.append((i, pcm, sr)))
    assert len(seen) >= 2 and [i for i, _, _ in seen] == list(range(len(seen)))
    assert all(sr == SAMPLE_RATE and pcm.dtype == np.int16 for _, pcm, sr in seen)
    gap = np.zeros(int(SAMPLE_RATE * 0.2), dtype=np.int16)
    joined = np.concatenate([p for k, (_, pcm, _) in enumerate(seen) for p in ((gap, pcm) if k else (pcm,))])
    assert np.array_equal(joined, out.audio)


def test_fast_preset_runs_fewer_dit_steps_on_a_capped_prompt(engine, monkeypatch):
    calls = []
    estimator = engine.s2mel.cfm.estimator
    real = estimator.forward
    monkeypatch.setattr(estimator, "forward", lambda x, *a: (calls.append(x.shape[-1]), real(x, *a))[1])
    request = _request(text="Good morning.")
    long_voice = replace(request, voice=reference_signal(5.0), voice_key="perf-test-5s")
    exact = engine.synthesize(long_voice)
    exact_calls, calls[:] = list(calls), []
    fast = engine.synthesize(replace(long_voice, generation=replace(long_voice.generation, quality="fast")))
    assert len(exact_calls) == CFM_STEPS and len(calls) == FAST_CFM_STEPS
    # The DiT runs over prompt + target frames. Fast makes its own voice prompt (one w2v-BERT
    # pass), so its codes, and with them the target frames, may differ from exact's: compare the
    # prompt part, what is left of each sequence after its own output's frames.
    exact_prompt_frames = exact_calls[0] - exact.audio.size // 256
    fast_prompt_frames = calls[0] - fast.audio.size // 256
    assert exact_prompt_frames > 258 and fast_prompt_frames == 258


# ---------------------------------------------------------------------------------------------
# the benchmark command


def test_bench_command_measures_both_paths(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = bench_main(["--model-dir", str(tiny_model_dir), "--workload", "smoke", "--runs", "1", "--warmup", "0",
                       "--compare-original", "--no-floor", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    # smoke: 2 segments x 20 codes -> 34 mel frames x 256 samples each, plus 200 ms between.
    expected_s = (2 * 34 * 256 + int(SAMPLE_RATE * 0.2)) / SAMPLE_RATE
    for path in ("ours", "original_style"):
        s = result[path]
        assert s["audio_s"] == pytest.approx(expected_s)
        assert all(s["stages_s"][k] > 0 for k in ("reference", "conditioning", "gpt_prefill", "gpt_decode", "latent", "dit", "vocoder"))
        assert sum(s["stages_s"].values()) <= s["total_s"] + 1e-6
        assert s["rtf"] == pytest.approx(s["total_s"] / expected_s)
        assert s["peak_rss_gib"] > 0 and len(s["foreign_cores"]) == 1
    assert result["ours"]["probes_ms"]["dit_forward"] > 0 and result["original_style"]["probes_ms"]["dit_forward"] > 0
    # ours streams: the first segment is out before the whole request is done
    assert result["ours"]["first_audio_s"] < result["ours"]["total_s"]
    table = capsys.readouterr().out
    assert "| DiT / CFM (s) |" in table and "original-style" in table


def test_bench_runs_both_paths_in_turn_when_asked(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = bench_main(["--model-dir", str(tiny_model_dir), "--workload", "smoke", "--runs", "2", "--warmup", "0",
                       "--compare-original", "--in-turn", "--no-floor", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    captured = capsys.readouterr()
    order = [line.split()[2].rstrip(":") for line in captured.err.splitlines() if line.strip().startswith("run ")]
    assert order == ["ours", "original-style", "ours", "original-style"]
    ours, theirs = result["ours"], result["original_style"]
    assert len(ours["each_total_s"]) == len(theirs["each_total_s"]) == 2
    assert result["in_turn_ratios"] == pytest.approx([b / a for a, b in zip(ours["each_total_s"], theirs["each_total_s"])], rel=1e-2)
    assert "runs taken in turn" in captured.out
    # the bf16 probe around each of our runs, where the CPU has native bf16 (none without)
    if native_bf16():
        assert all(len(t) == 2 and min(t) > 0 for t in ours["bf16_tflops"])
        assert "bf16 products before / after each of our runs" in captured.out
        assert "bf16 products" in next(line for line in captured.err.splitlines() if "run 1/2 ours" in line)
    else:
        assert ours["bf16_tflops"] == [None, None] and "bf16 products" not in captured.out


def test_bench_refuses_in_turn_without_the_original_style_path(tiny_model_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_main(["--model-dir", str(tiny_model_dir), "--workload", "smoke", "--in-turn"])
    assert stop.value.code == 2 and "add --compare-original" in capsys.readouterr().err


def test_bf16_probe_measures_only_where_the_cpu_multiplies_bf16(monkeypatch):
    from index_tts.modules import kernels

    monkeypatch.setattr(kernels, "native_bf16", lambda: False)
    assert machine.bf16_tflops() is None
    monkeypatch.setattr(kernels, "native_bf16", lambda: True)  # torch multiplies bf16 on any CPU, emulated or not
    tflops = machine.bf16_tflops(repeats=2)
    assert isinstance(tflops, float) and 0 < tflops < 1e3


def test_weight_norm_computed_once_gives_the_same_output_and_restores_the_hooks():
    from torch.nn.utils.weight_norm import WeightNorm

    from index_tts.modules.weight_norm import weight_normed, weights_computed_once

    torch.manual_seed(0)
    model = nn.Sequential(weight_normed(nn.Conv1d(4, 6, 3)), nn.Tanh(), weight_normed(nn.Conv1d(6, 2, 1)))
    x = torch.randn(2, 4, 9)
    hooks = lambda: sum(isinstance(h, WeightNorm) for m in model.modules() for h in m._forward_pre_hooks.values())
    with torch.no_grad():
        plain = model(x)
        with weights_computed_once(model):
            assert hooks() == 0
            once = model(x)
        assert hooks() == 2
        model[0].weight_g.mul_(2)  # after the block the weight follows its parameters again
        changed = model(x)
    assert torch.equal(once, plain)
    assert not torch.allclose(changed, plain)


@pytest.mark.parametrize("rows", [[0, 1, 2], [1, 0, 2], [2, 0, 1], [1, 1, 0], [2, 2, 2]])
def test_kv_cache_reorder_matches_index_select(rows):
    """The cache keeps beams in rows of its choosing (`slot`); read through it, a reorder is an
    index_select of the filled positions, twice in a row (the second from moved rows)."""
    from index_tts.modules.kv_cache import KVCache

    cache = KVCache(layers=2, batch=3, heads=2, max_len=7, head_dim=4, dtype=torch.float32, device="cpu")
    cache.kv.normal_()
    assert not cache.shared_history  # head_dim 4: torch's attention reads it, so rows are copied
    reference = cache.kv.clone()  # [layers, 2, beams, positions, H, Dh], beam b in row b
    for step_rows in (rows, [2, 0, 0]):
        before = cache.kv.clone()
        cache.reorder(torch.tensor(step_rows), length=5)
        reference[:, :, :, :5] = reference[:, :, :, :5].index_select(2, torch.tensor(step_rows))
        assert torch.equal(cache.kv[:, :, cache.slot, :5], reference[:, :, :, :5])
        assert torch.equal(cache.kv[:, :, :, 5:], before[:, :, :, 5:])  # positions not yet filled are left alone
        order = torch.arange(3) if cache.rows_order is None else cache.rows_order
        assert [order[s].item() for s in cache.slot] == [0, 1, 2]  # rows_order inverts slot


def test_the_paired_floor_probes_every_ten_steps_and_gives_each_stretch_the_higher_probe(engine, monkeypatch):
    from index_tts.bench import runner

    probes, steps = [], []

    class Probe:  # each probe reads 1 GB/s more than the last, and notes how many steps came before it
        def __init__(self, gib=1.0):
            pass

        def __call__(self, repeats=5):
            probes.append(len(steps))
            return 1e9 * len(probes)

    monkeypatch.setattr(machine, "BandwidthProbe", Probe)
    decode_step = engine.gpt.decode_step
    monkeypatch.setattr(engine.gpt, "decode_step", lambda *a, **k: steps.append(1) or decode_step(*a, **k))
    workload = WORKLOADS["smoke"]
    n_steps = workload.segments[0][1] - 1  # the first code comes from the prefill
    result = runner.paired_decode_floor(engine, workload, pairs=2)
    per_decode = n_steps // 10 + 1 + (n_steps % 10 > 0)  # before steps 0, 10, ... and at the end
    assert len(result["pairs"]) == 2 and len(probes) == 3 * per_decode and len(steps) == 3 * n_steps
    assert probes[:per_decode] == [*range(0, n_steps, 10), n_steps]  # steps before each probe of the warm-up decode
    weight_bytes = machine.gpt_bytes_per_decode_step(engine.gpt)
    for i, pair in enumerate(result["pairs"], start=1):
        # the higher probe of each stretch is the later one: probe j + 1 of this decode
        stretches = [min(10, n_steps - first) for first in range(0, n_steps, 10)]
        first_probe = i * per_decode + 1  # bandwidths 1, 2, ... GB/s in order
        floor_s = sum(n * weight_bytes / ((first_probe + j + 1) * 1e9) for j, n in enumerate(stretches))
        assert pair["floor_ms_per_token"] == pytest.approx(1000 * floor_s / n_steps)
        assert pair["probe_gb_s"] == [first_probe, first_probe + per_decode - 1] and pair["probes"] == per_decode
        assert pair["decode_ms_per_token"] > 0
        assert pair["ratio"] == pytest.approx(pair["decode_ms_per_token"] / pair["floor_ms_per_token"])
    ratios = sorted(p["ratio"] for p in result["pairs"])
    assert result["median_ratio"] == pytest.approx(sum(ratios) / 2)


def test_kv_cache_reorder_moves_no_data_for_a_permutation_and_one_row_per_extra_child():
    from index_tts.modules.kv_cache import KVCache

    cache = KVCache(layers=1, batch=3, heads=1, max_len=4, head_dim=2, dtype=torch.float32, device="cpu")
    cache.kv.normal_()
    before = cache.kv.clone()
    cache.reorder([2, 0, 1], length=4)
    assert torch.equal(cache.kv, before) and cache.slot == [2, 0, 1]
    cache.reorder([0, 0, 2], length=4)  # beam 1 died; beam 0's second child takes its row (0)
    assert cache.slot == [2, 0, 1]
    changed = [r for r in range(3) if not torch.equal(cache.kv[:, :, r], before[:, :, r])]
    assert changed == [0] and torch.equal(cache.kv[:, :, 0], before[:, :, 2])


@pytest.mark.parametrize("num_beams", [1, 3])
def test_decoding_never_reads_cache_positions_it_has_not_written(num_beams, monkeypatch):
    """The cache is not zeroed (1.15 GB at the default length with 3 beams): NaN in every
    position before decoding must change nothing."""
    from index_tts.modules import kv_cache

    model = tiny_model(logit_scale=3.0)
    spk, text, emo = inputs()
    params = DecodeParams(do_sample=True, num_beams=num_beams, max_mel_tokens=14, seed=5)
    clean = generate(model, spk, text, emo, params)
    made = []
    real_init = kv_cache.KVCache.__init__

    def poisoned(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.kv.fill_(float("nan"))
        made.append(self)

    monkeypatch.setattr(kv_cache.KVCache, "__init__", poisoned)
    poisoned_run = generate(model, spk, text, emo, params)
    assert made and poisoned_run.codes.tolist() == clean.codes.tolist()
