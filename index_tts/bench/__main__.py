"""python -m index_tts.bench --model-dir DIR [--workload ref5s-100tok|short|long|smoke]
    [--mode exact|fast] [--compare-original] [--runs 3] [--warmup 1] [--prompt cold|warm]
    [--wait-quiet] [--quality-check] [--json out.json]

Full-size random weights: `python -m index_tts.tools.make_model_dir /tmp/fullsize --config official`.
Prints the per-stage table (the one in docs/performance.md) and writes it as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from index_tts.bench import machine, runner
from index_tts.bench.clock import STAGES
from index_tts.bench.workloads import WORKLOADS
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
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="ref5s-100tok")
    ap.add_argument("--mode", choices=("exact", "fast"), default="exact", help="our engine's quality preset")
    ap.add_argument("--compare-original", action="store_true", help="also measure the original-style path")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompt", choices=("cold", "warm"), default="cold")
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--wait-quiet", action="store_true",
                    help=f"before each run wait until other processes use < {machine.QUIET_CORES} cores "
                         f"for {machine.QUIET_SECONDS:.0f} s")
    ap.add_argument("--max-wait", type=float, default=1800.0, help="longest quiet wait, seconds")
    ap.add_argument("--quality-check", action="store_true", help="compare fast and exact output (mel distance)")
    ap.add_argument("--no-floor", action="store_true", help="skip the memory-bandwidth probe")
    ap.add_argument("--json", type=Path, help="write all figures here")
    return ap.parse_args(argv)


def load_engine(model_dir: Path, device: str):
    from index_tts.engines.indextts2 import IndexTTS2Engine
    from index_tts.engines.model_files import missing_files

    missing = missing_files(model_dir)
    if missing:
        raise SystemExit(f"--model-dir {model_dir} is not a complete IndexTTS2 model directory: lacks {', '.join(missing)}")
    engine = IndexTTS2Engine(model_dir, device)
    start = time.perf_counter()
    engine._load_modules(lambda f, s: None, text=False)  # token ids in, no text front end
    return engine, time.perf_counter() - start


def _fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def format_table(result: dict) -> str:
    ours, orig = result["ours"], result.get("original_style")
    base = result.get("upstream_baseline_doc")
    cols = ["ours (" + result["mode"] + ")"] + (["original-style"] if orig else []) + (["upstream doc"] if base else [])
    lines = [f"workload {result['workload']}: {result['workload_description']}",
             f"| stage | " + " | ".join(cols) + (" | speed-up |" if orig else " |"),
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
    rss = result.get("rss_at_end_gib", {})
    if rss:
        lines.append(f"RSS at the end: {rss.get('VmRSS', 0):.2f} GiB = {rss.get('RssAnon', 0):.2f} anonymous + "
                     f"{rss.get('RssFile', 0):.2f} file-backed (memory-mapped checkpoint pages); load took {result['load_s']:.1f} s")
    floor = result.get("decode_floor")
    if floor:
        lines.append(f"decode floor: {floor['gpt_weight_bytes_per_step'] / 1e9:.3f} GB of GPT weights per step / "
                     f"{floor['read_bandwidth_gb_s']:.1f} GB/s read = {floor['floor_ms_per_token']:.1f} ms/token; "
                     f"ours {floor['ours_ratio']:.2f}× the floor"
                     + (f", original-style {floor['original_ratio']:.2f}×" if "original_ratio" in floor else ""))
    q = result.get("quality_check")
    if q:
        lines.append(f"fast vs exact (same seed): log-mel L1 {q['fast_vs_exact']['log_mel_l1']:.3f}, "
                     f"corr {q['fast_vs_exact']['log_mel_corr']:.3f}; exact vs exact at another seed: "
                     f"L1 {q['exact_vs_exact_other_seed']['log_mel_l1']:.3f}, corr {q['exact_vs_exact_other_seed']['log_mel_corr']:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workload = WORKLOADS[args.workload]
    quiet = args.max_wait if args.wait_quiet else None
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    engine, load_s = load_engine(args.model_dir, args.device)
    log(f"loaded {args.model_dir} on {args.device} in {load_s:.1f} s")
    result = {
        "workload": workload.name, "workload_description": workload.description, "mode": args.mode,
        "prompt": args.prompt, "machine": machine.machine_info(), "load_s": load_s,
        "model_dir": str(args.model_dir), "rss_after_load_gib": machine.rss_breakdown_gib(),
    }
    log(f"ours ({args.mode}, {args.prompt} prompt): {args.warmup} warm-up + {args.runs} runs")
    result["ours"] = runner.summarise(runner.measure(
        lambda: runner.run_ours(engine, workload, args.mode, args.prompt), args.runs, args.warmup, quiet, log))
    if args.compare_original:
        log(f"original-style: {args.warmup} warm-up + {args.runs} runs")
        result["original_style"] = runner.summarise(runner.measure(
            lambda: runner.run_original_style(engine, workload), args.runs, args.warmup, quiet, log))
    if workload.name == "ref5s-100tok" and args.device == "cpu":
        result["upstream_baseline_doc"] = runner.UPSTREAM_BASELINE_REF5S
    if not args.no_floor and engine.gpt.cfg.layers > 2:
        floor = runner.decode_floor(engine, machine.memory_read_bandwidth())
        floor["ours_ratio"] = result["ours"]["decode_ms_per_token"] / floor["floor_ms_per_token"]
        if "original_style" in result:
            floor["original_ratio"] = result["original_style"]["decode_ms_per_token"] / floor["floor_ms_per_token"]
        result["decode_floor"] = floor
    if args.quality_check:
        result["quality_check"] = runner.quality_check(engine, workload)

    result["rss_at_end_gib"] = machine.rss_breakdown_gib()
    print(format_table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
