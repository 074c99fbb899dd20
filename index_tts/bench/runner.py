"""Run a workload through our engine and through the original-style path; summarise the runs.

A run is timed from the reference audio (float samples in memory) to the int16 waveform, as the
upstream baseline's timed region (no text front end, no file writing). "Cold" clears the voice
caches first, so reference processing is inside every run, as upstream's first call with a new
prompt; "warm" keeps them.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from index_tts.bench import machine
from index_tts.bench.clock import STAGES, StageClock, instrument
from index_tts.bench.original import synthesize_original_style
from index_tts.bench.workloads import REF_SR, Workload, reference_signal
from index_tts.emotion import EmotionSpec
from index_tts.engines.base import GenerationParams

SEED = 0

# upstream-cpu-baseline.md §4.2: the original on the baseline VM (AMD Zen 3, AVX2, 2 threads),
# ref5s-100tok, cold prompt, median of 3. Another CPU than a later bench run may have: the
# same-run original-style path is the like-for-like comparison.
UPSTREAM_BASELINE_REF5S = {
    "total_s": 76.07, "rtf": 38.1, "reference": 5.448, "conditioning": 1.604, "gpt_prefill": 1.392,
    "gpt_decode": 26.81, "decode_ms_per_token": 271.0, "latent": 1.380, "dit": 35.47,
    "dit_forward_ms": 1410.0, "vocoder": 3.170, "peak_rss_gib": 8.16,
}


@dataclass(frozen=True)
class BenchParams(GenerationParams):
    """GenerationParams plus the benchmark-only forced code count (read by the decoder)."""

    min_new_tokens: int = 0


def workload_params(workload: Workload, quality: str, seed: int = SEED) -> BenchParams:
    n = workload.codes_per_segment
    return BenchParams(max_mel_tokens=n, min_new_tokens=n, quality=quality, seed=seed)


@dataclass
class RunRecord:
    path: str                      # "ours" or "original-style"
    total_s: float
    audio_s: float
    first_audio_s: float
    stages: dict[str, float]
    probes: dict[str, float]       # medians in ms: gpt_decode_forward, dit_forward, w2v_bert
    decode_steps: int
    own_cores: float
    foreign_cores: float
    peak_rss_gib: float
    peak_gpu_gib: float | None = None
    bf16_tflops: tuple[float, float] | None = None  # machine.bf16_tflops just before and after the run
    audio: np.ndarray | None = field(default=None, repr=False)
    segment_audio: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def rtf(self) -> float:
        return self.total_s / self.audio_s

    @property
    def clean(self) -> bool:
        return self.foreign_cores <= machine.CLEAN_CORES


def _token_segments(engine, workload: Workload) -> list[torch.Tensor]:
    vocab = engine.gpt.cfg.number_text_tokens
    return [torch.tensor([ids], dtype=torch.int32) for ids in workload.text_ids(vocab)]


def _start_memory_window(device: str) -> None:
    machine.reset_peak_rss()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _gpu_peak(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def run_ours(engine, workload: Workload, quality: str = "exact", prompt: str = "cold", seed: int = SEED,
             trace=None) -> RunRecord:
    wav = reference_signal(workload.ref_seconds)
    segments = _token_segments(engine, workload)
    params = workload_params(workload, quality, seed)
    clock = StageClock()
    first_audio: list[float] = []
    pieces: list[np.ndarray] = []
    if prompt == "cold":
        engine._voices.clear()
    _start_memory_window(engine.device)
    with instrument(engine, clock), machine.cpu_window() as window:
        start = time.perf_counter()
        generator = torch.Generator(device=engine.device).manual_seed(seed)
        voice = engine.voice_prompt(wav, REF_SR, key="bench-reference", quality=quality)
        emovec = engine.emotion_vector(voice, EmotionSpec(), "", generator)
        on_segment = lambda index, pcm, sr: (first_audio.append(time.perf_counter() - start), pieces.append(pcm))
        extra = {} if trace is None else {"trace": trace}
        out, _ = engine.synthesize_tokens(voice, emovec, segments, params, generator, on_segment=on_segment, **extra)
        pcm = out.to(torch.int16).numpy()
        total = time.perf_counter() - start
    record = _record("ours", clock, window, total, pcm, first_audio[0] if first_audio else total, workload, engine.device)
    record.segment_audio = pieces
    return record


def run_original_style(engine, workload: Workload) -> RunRecord:
    from index_tts.engines.indextts2 import CFG_RATE, CFM_STEPS, SAMPLE_RATE

    wav = reference_signal(workload.ref_seconds)
    segments = _token_segments(engine, workload)
    params = workload_params(workload, "exact")
    clock = StageClock()
    _start_memory_window(engine.device)
    with machine.cpu_window() as window:
        start = time.perf_counter()
        generator = torch.Generator(device=engine.device).manual_seed(SEED)
        silence = int(SAMPLE_RATE * params.interval_silence_ms / 1000)
        pcm = synthesize_original_style(engine, wav, REF_SR, segments, params, generator, clock,
                                        CFM_STEPS, CFG_RATE, silence)
        total = time.perf_counter() - start
    # upstream's infer() hands over the whole file at the end: that is its first audio.
    return _record("original-style", clock, window, total, pcm, total, workload, engine.device)


def _record(path, clock, window, total, pcm, first_audio, workload, device) -> RunRecord:
    from index_tts.engines.indextts2 import SAMPLE_RATE

    median_ms = lambda xs: 1000 * statistics.median(xs) if xs else float("nan")
    return RunRecord(
        path=path, total_s=total, audio_s=pcm.size / SAMPLE_RATE, first_audio_s=first_audio,
        stages={name: clock.stages.get(name, 0.0) for name in STAGES},
        probes={name: median_ms(values) for name, values in clock.probes.items()},
        decode_steps=sum(n - 1 for n in workload.codes),
        own_cores=window.own_cores, foreign_cores=window.foreign_cores,
        peak_rss_gib=machine.peak_rss_gib(), peak_gpu_gib=_gpu_peak(device), audio=pcm,
    )


def summarise(records: list[RunRecord]) -> dict:
    """Medians over runs (figures of each run kept too)."""
    med = lambda xs: statistics.median(xs)
    stages = {name: med([r.stages[name] for r in records]) for name in STAGES}
    total = med([r.total_s for r in records])
    steps = records[0].decode_steps
    probe_names = sorted({k for r in records for k in r.probes})
    summary = {
        "path": records[0].path,
        "runs": len(records),
        "total_s": total,
        "audio_s": records[0].audio_s,
        "rtf": med([r.rtf for r in records]),
        "first_audio_s": med([r.first_audio_s for r in records]),
        "stages_s": stages,
        "other_s": max(0.0, total - sum(stages.values())),
        "decode_ms_per_token": 1000 * stages["gpt_decode"] / steps if steps else None,
        "decode_tokens_per_s": steps / stages["gpt_decode"] if stages["gpt_decode"] else None,
        "probes_ms": {k: med([r.probes[k] for r in records if k in r.probes]) for k in probe_names},
        "peak_rss_gib": max(r.peak_rss_gib for r in records),
        "peak_gpu_gib": None if records[0].peak_gpu_gib is None else max(r.peak_gpu_gib for r in records),
        "foreign_cores": [round(r.foreign_cores, 3) for r in records],
        "own_cores": [round(r.own_cores, 2) for r in records],
        "all_clean": all(r.clean for r in records),
        "each_total_s": [round(r.total_s, 3) for r in records],
        "bf16_tflops": [None if r.bf16_tflops is None else [round(t, 2) for t in r.bf16_tflops] for r in records],
    }
    return summary


def measure(fn, runs: int, warmup: int, quiet_wait_s: float | None, log=print) -> list[RunRecord]:
    """`warmup` untimed calls, then `runs` timed ones (each after a quiet wait, when asked)."""
    return measure_in_turn([fn], runs, warmup, quiet_wait_s, log)[0]


def measure_in_turn(fns: list, runs: int, warmup: int, quiet_wait_s: float | None, log=print) -> list[list[RunRecord]]:
    """`measure` for several paths, their timed runs taken in turn (a, b, a, b, ...): on a host
    whose speed drifts over minutes (an Intel Xeon VM here moved ±20% within a quarter of an hour),
    all of a's runs and then all of b's would compare two different machines."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    records: list[list[RunRecord]] = [[] for _ in fns]
    for i in range(runs):
        for fn, mine in zip(fns, records):
            if quiet_wait_s is not None:
                machine.wait_quiet(quiet_wait_s, log)
            before = machine.bf16_tflops()
            record = fn()
            after = machine.bf16_tflops()
            record.bf16_tflops = None if before is None else (before, after)
            bf16 = "" if before is None else f", bf16 products {before:.2f} / {after:.2f} TFLOP/s before / after"
            log(f"  run {i + 1}/{runs} {record.path}: {record.total_s:.2f} s, RTF {record.rtf:.2f}, "
                f"other processes {record.foreign_cores:.2f} cores{'' if record.clean else ' (NOT clean)'}{bf16}")
            mine.append(record)
    return records


def decode_floor(engine, bandwidth_bytes_per_s: float) -> dict:
    """The weight-streaming floor of one beam-3 decode step: GPT weight bytes / read bandwidth."""
    weight_bytes = machine.gpt_bytes_per_decode_step(engine.gpt)
    return {
        "gpt_weight_bytes_per_step": weight_bytes,
        "read_bandwidth_gb_s": bandwidth_bytes_per_s / 1e9,
        "floor_ms_per_token": 1000 * weight_bytes / bandwidth_bytes_per_s,
    }


STEPS_BETWEEN_PROBES = 10


def paired_decode_floor(engine, workload: Workload, pairs: int) -> dict:
    """Exact-mode decodes against the floor, with the bandwidth probed every 10 steps.

    On a host whose memory bandwidth swings with other VMs (here between ~35 and ~70 GB/s, from
    one minute to the next), a probe taken after the whole run says little about the bandwidth
    the decode had, and even probes on either side of a 3.5 s decode miss a change of window
    inside it. So each decode of the workload's first segment (beam search, its code count;
    random speaker latents: the step's work does not depend on them) stops for a probe before
    every 10th step and at the end; the probes are not timed, and neither is the prefill. Each
    stretch of steps between two probes gets the floor of the higher one (the stricter floor),
    and a decode's ratio is its whole time over the sum of its stretches' floors, so a stall
    anywhere in it counts. The first decode warms up."""
    from index_tts.bench.clock import patched
    from index_tts.modules.generation import decode

    gpt = engine.gpt
    tokens = torch.tensor(workload.text_ids(gpt.cfg.number_text_tokens)[0], device=engine.device)
    d = gpt.cfg.model_dim
    g = torch.Generator(device=engine.device).manual_seed(SEED)
    latent = torch.randn(1, 32, d, generator=g, device=engine.device) * 0.5
    with torch.no_grad():
        prompt = gpt.prompt_embeddings(latent, torch.zeros(1, d, device=engine.device), tokens)
    params = workload_params(workload, "exact")
    weight_bytes = machine.gpt_bytes_per_decode_step(gpt)
    probe = machine.BandwidthProbe()
    probes: list[tuple[int, float, float, float]] = []  # (steps before it, start, end, bandwidth)
    steps = [0]
    decode_step = gpt.decode_step

    def take_probe() -> None:
        start = time.perf_counter()
        bandwidth = probe(repeats=3)
        probes.append((steps[0], start, time.perf_counter(), bandwidth))

    def probed_step(*args, **kwargs):
        if steps[0] % STEPS_BETWEEN_PROBES == 0:
            take_probe()
        steps[0] += 1
        return decode_step(*args, **kwargs)

    rows = []
    with patched([(gpt, "decode_step", probed_step)]):
        for _ in range(pairs + 1):  # the first decode warms up
            probes.clear()
            steps[0] = 0
            decode(gpt, prompt, params)
            take_probe()
            decode_s = floor_s = 0.0
            for (first, _, left, before), (last, reached, _, after) in zip(probes, probes[1:]):
                decode_s += reached - left
                floor_s += (last - first) * weight_bytes / max(before, after)
            bandwidths = [p[3] / 1e9 for p in probes]
            ms, floor_ms = 1000 * decode_s / steps[0], 1000 * floor_s / steps[0]
            rows.append({"decode_ms_per_token": ms, "floor_ms_per_token": floor_ms, "ratio": ms / floor_ms,
                         "probe_gb_s": [min(bandwidths), max(bandwidths)], "probes": len(probes)})
    rows = rows[1:]
    return {"pairs": rows, "median_ratio": statistics.median(r["ratio"] for r in rows),
            "steps_between_probes": STEPS_BETWEEN_PROBES}


def log_mel(pcm: np.ndarray) -> torch.Tensor:
    from index_tts import audio

    return audio.mel_spectrogram(pcm.astype(np.float32) / 32768)[0]  # [80, frames]


def mel_distance(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean absolute log-mel difference and Pearson correlation of two waveforms' mels."""
    ma, mb = log_mel(a), log_mel(b)
    n = min(ma.size(-1), mb.size(-1))
    ma, mb = ma[:, :n].flatten(), mb[:, :n].flatten()
    corr = torch.corrcoef(torch.stack([ma, mb]))[0, 1].item()
    return {"log_mel_l1": (ma - mb).abs().mean().item(), "log_mel_corr": corr}


def quality_check(engine, workload: Workload, mode: str) -> dict:
    """`mode` vs exact on the same seed, per segment, beside exact vs exact at another seed for
    scale; and whether `mode` chose the same codes as exact."""
    from index_tts.engines.indextts2 import Trace

    codes = lambda trace: [v.tolist() for k, v in sorted(trace.values.items()) if k.endswith("_codes")]
    exact_trace, mode_trace = Trace({}), Trace({})
    exact = run_ours(engine, workload, "exact", trace=exact_trace).segment_audio
    ours = run_ours(engine, workload, mode, trace=mode_trace).segment_audio
    other = run_ours(engine, workload, "exact", seed=SEED + 1).segment_audio
    return {"mode": mode,
            "mode_vs_exact": [mel_distance(a, b) for a, b in zip(exact, ours)],
            "exact_vs_exact_other_seed": [mel_distance(a, b) for a, b in zip(exact, other)],
            "codes_identical": codes(exact_trace) == codes(mode_trace),
            "codes_first_difference": [first_difference(a, b) for a, b in zip(codes(exact_trace), codes(mode_trace))]}


def first_difference(a: list, b: list) -> int | None:
    """The first decode step at which two segments' codes differ (None: identical). Sampling is
    autoregressive, so after it the two continue from different codes."""
    a, b = [c for row in a for c in row], [c for row in b for c in row]
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b)))
