"""python -m index_tts.bench --model-dir DIR [--workload ref5s-100tok|short|long|smoke]
    [--mode exact|balanced|fast] [--compare-original] [--runs 3] [--warmup 1] [--prompt cold|warm]
    [--wait-quiet] [--quality-check] [--json out.json]
python -m index_tts.bench --model 2.5|both --model-dir DIR --model-dir-25 DIR25 [--workload ...] [--mode ...]

Full-size random weights: `python -m index_tts.tools.make_model_dir /tmp/fullsize --config official`
(and `--config official-2.5` for IndexTTS-2.5). Prints the per-stage table (the one in
docs/performance.md) and writes it as JSON with --json. `--model both` measures IndexTTS2 and
IndexTTS-2.5 on the same text and audio length, one after the other (bench/compare25.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from index_tts.bench import machine, runner
from index_tts.bench.clock import STAGES
from index_tts.engines.precision import front_end_gib, reduced_precision_note, weights_gib
from index_tts.modules.kernels import describe_cached
from index_tts.bench.workloads import WORKLOADS
from index_tts.engines.base import QUALITY_MODES
from index_tts.fileio import atomic_write_text

STAGE_LABELS = {
    "reference": "reference processing",
    "conditioning": "conditioning (speaker + emotion)",
    "gpt_prefill": "GPT prefill",
    "gpt_decode": "GPT decode (incl. search overhead)",
    "latent": "GPT latent pass",
    "dit": "DiT / CFM",
    "vocoder": "BigVGAN",
}


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m index_tts.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/fullsize"),
                    help="an IndexTTS2 model directory (default /tmp/fullsize)")
    ap.add_argument("--model", choices=("2", "2.5", "both"), default="2",
                    help="IndexTTS2 (2, the default), IndexTTS-2.5 (2.5) or both side by side on the same workload")
    ap.add_argument("--model-dir-25", type=Path, default=Path("/tmp/fullsize-25"),
                    help="an IndexTTS-2.5 model directory, for --model 2.5|both (default /tmp/fullsize-25)")
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="ref5s-100tok")
    ap.add_argument("--mode", choices=QUALITY_MODES, default="exact", help="our engine's quality mode")
    ap.add_argument("--compare-original", action="store_true", help="also measure the original-style path")
    ap.add_argument("--in-turn", action="store_true",
                    help="with --compare-original: hold both paths loaded and run them in turn (ours, original-style, "
                         "ours, ...), so a drifting host slows both alike; peak RSS then counts both paths' weights")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompt", choices=("cold", "warm"), default="cold")
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--wait-quiet", action="store_true",
                    help=f"before each run wait until other processes use < {machine.QUIET_CORES} cores "
                         f"for {machine.QUIET_SECONDS:.0f} s")
    ap.add_argument("--max-wait", type=float, default=1800.0, help="longest quiet wait, seconds")
    ap.add_argument("--quality-check", action="store_true",
                    help="compare --mode's output with exact mode's, per segment (mel distance)")
    ap.add_argument("--no-floor", action="store_true", help="skip the memory-bandwidth probe")
    ap.add_argument("--floor-pairs", type=int, default=3,
                    help="exact-mode decodes timed against bandwidth probes taken every 10 steps (0: none)")
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args(argv)
    if args.in_turn and not args.compare_original:
        ap.error("--in-turn runs ours and the original-style path in turn: add --compare-original")
    return args


def load_engine(model_dir: Path, device: str, kernels: str = "auto"):
    from index_tts.engines.indextts2 import IndexTTS2Engine
    from index_tts.model_store.model_files import missing_files

    missing = missing_files(model_dir)
    if missing:
        raise SystemExit(f"--model-dir {model_dir} is not a complete IndexTTS2 model directory: lacks {', '.join(missing)}")
    engine = IndexTTS2Engine(model_dir, device, kernels=kernels)
    start = time.perf_counter()
    engine._load_modules(lambda f, s: None, text=False)  # token ids in, no text front end
    return engine, time.perf_counter() - start


def _fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def format_table(result: dict) -> str:
    ours, orig = result["ours"], result.get("original_style")
    base = result.get("upstream_baseline_doc")
    cols = ["ours (" + result["mode"] + ")"] + (["original-style"] if orig else []) + (["upstream doc"] if base else [])
    m = result["machine"]
    lines = [f"machine: {m['cpu']}; ISA {' '.join(m['isa_flags']) or '-'}; torch {m['torch']}, {m['torch_threads']} threads"
             + (f"; GPU {m['gpu']}" if m.get("gpu") else ""),
             f"mode {result['mode']}: DiT/CFM and BigVGAN in {result['decoder_precision']}",
             f"workload {result['workload']}: {result['workload_description']}",
             "| stage | " + " | ".join(cols) + (" | speed-up |" if orig else " |"),
             "|---" * (len(cols) + 1 + bool(orig)) + "|"]

    def row(label, key, get, digits=3, ratio=True):
        vals = [get(ours)] + ([get(orig)] if orig else []) + ([base.get(key)] if base else [])
        cells = [_fmt(v, digits) for v in vals]
        speed = ""
        if orig:
            a, b = get(ours), get(orig)
            speed = f" | {b / a:.2f}×" if ratio and a and b else " | "
        lines.append(f"| {label} | " + " | ".join(cells) + speed + " |")

    for name in STAGES:
        row(STAGE_LABELS[name] + " (s)", name, lambda s, n=name: s["stages_s"][n])
    row("other (s)", "other", lambda s: s["other_s"])
    row("**total (s)**", "total_s", lambda s: s["total_s"])
    row("**RTF**", "rtf", lambda s: s["rtf"], 2)
    row("first audio (s)", "first_audio", lambda s: s["first_audio_s"])
    row("decode ms/token", "decode_ms_per_token", lambda s: s["decode_ms_per_token"], 1)
    row("decode forward ms/step", "decode_fwd", lambda s: s["probes_ms"].get("gpt_decode_forward"), 1)
    row("DiT forward ms", "dit_forward_ms", lambda s: s["probes_ms"].get("dit_forward"), 1)
    row("peak RSS (GiB)", "peak_rss_gib", lambda s: s["peak_rss_gib"], 2, ratio=False)
    if ours.get("peak_gpu_gib") is not None:
        row("peak GPU memory (GiB)", "gpu", lambda s: s["peak_gpu_gib"], 2, ratio=False)
    lines.append("")
    lines.append(f"other processes during each run (cores): ours {ours['foreign_cores']}"
                 + (f", original-style {orig['foreign_cores']}" if orig else "")
                 + ("" if ours["all_clean"] and (not orig or orig["all_clean"]) else
                    f"  -- NOT clean (> {machine.CLEAN_CORES} cores): figures distorted"))
    if result.get("in_turn_ratios"):
        ratios = result["in_turn_ratios"]
        lines.append("runs taken in turn, both paths loaded (so each peak RSS counts both paths' weights): "
                     "original-style / ours per round " + ", ".join(f"{r:.2f}×" for r in ratios)
                     + f"; median {statistics.median(ratios):.2f}×")
    if any(ours["bf16_tflops"]):
        lines.append("bf16 products before / after each of our runs (TFLOP/s; what the reduced modes' DiT and BigVGAN "
                     "get, which other guests on the host can halve): "
                     + ", ".join(f"{t[0]:.2f} / {t[1]:.2f}" for t in ours["bf16_tflops"]))
    rss = result.get("rss_at_end_gib", {})
    if rss:
        lines.append(f"RSS at the end: {rss.get('VmRSS', 0):.2f} GiB = {rss.get('RssAnon', 0):.2f} anonymous "
                     f"({rss.get('AnonHugePages', 0):.2f} in 2 MB pages) + "
                     f"{rss.get('RssFile', 0):.2f} file-backed; weights held {result['weights_gib']:.2f} GiB, of which "
                     f"{result.get('front_end_gib', 0):.2f} file-backed (the voice front end, resident only while a voice is built); "
                     f"load took {result['load_s']:.1f} s, its peak RSS {result['rss_after_load_gib'].get('VmHWM', 0):.2f} GiB")
    floor = result.get("decode_floor")
    if floor:
        lines.append(f"decode floor: {floor['gpt_weight_bytes_per_step'] / 1e9:.3f} GB of GPT weights per step / "
                     f"{floor['read_bandwidth_gb_s']:.1f} GB/s read (one probe after the runs) = "
                     f"{floor['floor_ms_per_token']:.1f} ms/token; "
                     f"ours {floor['ours_ratio']:.2f}× the floor"
                     + (f", original-style {floor['original_ratio']:.2f}×" if "original_ratio" in floor else ""))
        if "paired" in floor:
            pairs = floor["paired"]["pairs"]
            lines.append(f"decode floor, paired (exact decodes of the first segment, a bandwidth probe every "
                         f"{floor['paired']['steps_between_probes']} steps, each stretch against the higher probe "
                         "beside it): " + "; ".join(
                             f"{r['decode_ms_per_token']:.1f} ms/token vs {r['floor_ms_per_token']:.1f} "
                             f"({r['probe_gb_s'][0]:.0f}-{r['probe_gb_s'][1]:.0f} GB/s) = {r['ratio']:.2f}×" for r in pairs)
                         + f"; median {floor['paired']['median_ratio']:.2f}×")
    q = result.get("quality_check")
    if q:
        lines.append(f"{q['mode']} vs exact, same seed, per segment (log-mel L1 / corr): "
                     + "; ".join(f"{d['log_mel_l1']:.3f} / {d['log_mel_corr']:.3f}" for d in q["mode_vs_exact"])
                     + "; exact vs exact at another seed (scale): "
                     + "; ".join(f"{d['log_mel_l1']:.3f} / {d['log_mel_corr']:.3f}" for d in q["exact_vs_exact_other_seed"])
                     + f"; codes identical to exact: {q['codes_identical']}"
                     + ("" if q["codes_identical"] else " (first different step per segment: "
                        + ", ".join(str(i) for i in q["codes_first_difference"]) + ")"))
    if result.get("kernels"):
        lines.append("kernels per module (layers): " + "; ".join(
            f"{name} " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())) for name, c in result["kernels"].items() if c))
        lines.append(f"kernel timings on this machine ({result['kernel_cache']}):")
        lines.extend("  " + line for line in result["kernel_choices"])
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workload = WORKLOADS[args.workload]
    quiet = args.max_wait if args.wait_quiet else None
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    if args.model != "2":
        from index_tts.bench import compare25

        result = compare25.run(args, log)
        print(compare25.format_table(result))
        if args.json:
            atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        return 0

    if args.wait_quiet:  # the first load measures the kernels: on a quiet machine too
        machine.wait_quiet(args.max_wait, log)
    engine, load_s = load_engine(args.model_dir, args.device)
    log(f"loaded {args.model_dir} on {args.device} in {load_s:.1f} s")
    kernel_info = describe_cached()
    result = {
        "workload": workload.name, "workload_description": workload.description, "mode": args.mode,
        "prompt": args.prompt, "machine": machine.machine_info(), "load_s": load_s,
        "decoder_precision": reduced_precision_note(args.device) if args.mode != "exact" else "fp32 (exact)",
        "kernels": engine.kernel_counts, "kernel_cache": kernel_info["cache"], "kernel_choices": kernel_info["choices"],
        "model_dir": str(args.model_dir), "rss_after_load_gib": machine.rss_breakdown_gib(),
        "weights_gib": weights_gib(engine), "front_end_gib": front_end_gib(engine),
    }
    run_ours = lambda: runner.run_ours(engine, workload, args.mode, args.prompt)
    if args.in_turn and args.compare_original:
        original, _ = load_engine(args.model_dir, args.device, kernels="plain")
        log(f"ours ({args.mode}, {args.prompt} prompt) and original-style in turn: {args.warmup} warm-up + {args.runs} runs each")
        ours, theirs = runner.measure_in_turn([run_ours, lambda: runner.run_original_style(original, workload)],
                                              args.runs, args.warmup, quiet, log)
        result["ours"], result["original_style"] = runner.summarise(ours), runner.summarise(theirs)
        result["in_turn_ratios"] = [b.total_s / a.total_s for a, b in zip(ours, theirs)]
        del original
        gc.collect()
    else:
        log(f"ours ({args.mode}, {args.prompt} prompt): {args.warmup} warm-up + {args.runs} runs")
        result["ours"] = runner.summarise(runner.measure(run_ours, args.runs, args.warmup, quiet, log))
    if workload.name == "ref5s-100tok" and args.device == "cpu":
        result["upstream_baseline_doc"] = runner.UPSTREAM_BASELINE_REF5S
    if not args.no_floor and engine.gpt.cfg.layers > 2:
        floor = runner.decode_floor(engine, machine.memory_read_bandwidth())
        floor["ours_ratio"] = result["ours"]["decode_ms_per_token"] / floor["floor_ms_per_token"]
        result["decode_floor"] = floor
        if args.floor_pairs > 0:
            floor["paired"] = runner.paired_decode_floor(engine, workload, args.floor_pairs)
    if args.quality_check:
        result["quality_check"] = runner.quality_check(engine, workload, args.mode)
    result["rss_at_end_gib"] = machine.rss_breakdown_gib()
    if args.compare_original and not args.in_turn:
        # Its own copy of the weights with torch's default layers, loaded only now: ours is
        # released first, so neither path's peak memory includes the other's weights.
        del engine
        gc.collect()
        original, _ = load_engine(args.model_dir, args.device, kernels="plain")
        log(f"original-style: {args.warmup} warm-up + {args.runs} runs")
        result["original_style"] = runner.summarise(runner.measure(
            lambda: runner.run_original_style(original, workload), args.runs, args.warmup, quiet, log))
    if "decode_floor" in result and "original_style" in result:
        floor = result["decode_floor"]
        floor["original_ratio"] = result["original_style"]["decode_ms_per_token"] / floor["floor_ms_per_token"]

    print(format_table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
