"""The GPU acceptance check: one command that does everything on a bare GPU machine.

    python -m index_tts.bench.gpu_check [--device cuda:0] [--config official] [--wheels DIR]

1. environment: torch, the device, and the packages the image lacks (soundfile, soxr, pytest,
   WeTextProcessing), installed from carried wheels (`--wheels`, pip --no-index);
2. full-size random weights (`index_tts.tools.make_model_dir --config official`);
3. every conformance fixture with the neural runners on the device, in fp32, printing the largest
   error per fixture kind and output (`INDEX_TTS_FIXTURE_DEVICE`);
4. the GPU-marked tests;
5. the bench: `short` and `ref5s-100tok` in exact and balanced mode, balanced again with the
   decode step as a CUDA graph, and `long` streamed (first audio), printing RTF, first audio and
   peak GPU memory.

Dry run on a CPU: `--device cpu --config tiny` (every step, tiny weights, shortened bench).
Preparing the wheels for a machine without the index (here, with network):
`pip download soundfile soxr pytest WeTextProcessing --only-binary=:all: --python-version 3.12
--platform manylinux2014_x86_64 -d wheels/` (once per Python version the image may have; `wheels/`
in .git/info/exclude and named in the device run's `carry`).
(once per Python version the image may have).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> int:
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)
    print(f"  -> exit {code} in {time.perf_counter() - start:.1f} s", flush=True)
    return code


# What the bare image lacks: module -> pip name (the audio I/O and resampler, the test runner,
# the text normaliser the text-front-end fixture checks).
NEEDED = {"soundfile": "soundfile", "soxr": "soxr", "pytest": "pytest", "tn": "WeTextProcessing"}


def ensure_packages(wheels: Path | None) -> bool:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing and wheels is not None and wheels.is_dir():
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
              *(NEEDED[m] for m in missing)])
        importlib.invalidate_caches()
        missing = [m for m in missing if importlib.util.find_spec(m) is None]
    if missing:
        print(f"MISSING packages {[NEEDED[m] for m in missing]}: carry their wheels and pass --wheels DIR", flush=True)
    return not missing


def environment(device: str) -> None:
    import torch

    from index_tts.bench.machine import machine_info

    info = machine_info()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {device}"
          + (f" = {torch.cuda.get_device_name(device)}" if device.startswith("cuda") else ""), flush=True)
    print(f"CPU {info['cpu']}, ISA {' '.join(info['isa_flags'])}, {info['torch_threads']} threads", flush=True)


def bench(model_dir: Path, device: str, tiny: bool) -> list[dict]:
    """Each (workload, mode) on one loaded engine; returns the summaries."""
    from index_tts.bench import runner
    from index_tts.bench.__main__ import load_engine
    from index_tts.bench.workloads import WORKLOADS
    from index_tts.engines.precision import CUDA_GRAPHS_ENV

    engine, load_s = load_engine(model_dir, device)
    print(f"engine loaded in {load_s:.1f} s", flush=True)
    plan = [("short", "exact", False), ("short", "balanced", False), ("short", "balanced", True),
            ("ref5s-100tok", "exact", False), ("ref5s-100tok", "balanced", False), ("long", "balanced", True)]
    if tiny:
        plan = [("smoke", "exact", False), ("smoke", "balanced", False), ("smoke", "balanced", True)]
    runs, warmup = (1, 0) if tiny else (3, 1)
    rows = []
    print("| workload | mode | RTF | total s | first audio s | decode ms/token | DiT forward ms | peak GPU GiB | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, mode, graphs in plan:
        os.environ[CUDA_GRAPHS_ENV] = "1" if graphs else "0"
        records = runner.measure(lambda: runner.run_ours(engine, WORKLOADS[name], mode, "cold"), runs, warmup, None,
                                 log=lambda m: None)
        s = runner.summarise(records)
        label = mode + (" + CUDA graph decode" if graphs else "")
        gpu = "—" if s["peak_gpu_gib"] is None else f"{s['peak_gpu_gib']:.2f}"
        print(f"| {name} | {label} | {s['rtf']:.3f} | {s['total_s']:.3f} | {s['first_audio_s']:.3f} | "
              f"{s['decode_ms_per_token']:.1f} | {s['probes_ms'].get('dit_forward', float('nan')):.1f} | {gpu} | "
              f"{s['peak_rss_gib']:.2f} |", flush=True)
        rows.append({"workload": name, "mode": label, **s})
    os.environ.pop(CUDA_GRAPHS_ENV, None)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m index_tts.bench.gpu_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--config", default="official", help="official (default) or tiny (a quick dry run)")
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/gpu-check-model"))
    ap.add_argument("--wheels", type=Path, default=REPO / "wheels", help="soundfile/soxr wheels for pip --no-index")
    ap.add_argument("--skip", action="append", default=[], choices=("weights", "fixtures", "gpu-tests", "bench"))
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)

    failures = []
    if not ensure_packages(args.wheels):
        failures.append("packages")
    environment(args.device)
    if "weights" not in args.skip and not (args.model_dir / "config.yaml").is_file():
        if _run([sys.executable, "-m", "index_tts.tools.make_model_dir", str(args.model_dir), "--config", args.config]):
            failures.append("weights")
    if "fixtures" not in args.skip:
        print("conformance fixtures in fp32 on", args.device, flush=True)
        if _run([sys.executable, "-m", "pytest", "tests/conformance/test_fixtures.py", "-q", "-p", "no:cacheprovider"],
                env={"INDEX_TTS_FIXTURE_DEVICE": args.device}):
            failures.append("fixtures")
    if "gpu-tests" not in args.skip:
        marked = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                        if "mark.gpu" in p.read_text(encoding="utf-8"))
        code = _run([sys.executable, "-m", "pytest", *marked, "-q", "-m", "gpu", "-rs", "-p", "no:cacheprovider"])
        if code not in (0, 5):  # 5: nothing collected (a CPU dry run skips them all)
            failures.append("gpu tests")
    if "bench" not in args.skip:
        bench(args.model_dir, args.device, tiny=args.config == "tiny")
    print("GPU CHECK " + ("PASSED" if not failures else "FAILED: " + ", ".join(failures)), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
