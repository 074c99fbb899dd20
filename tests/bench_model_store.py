"""Benchmark (not a test): download throughput from the local test Hub, and `doctor --verify` time.

    .venv/bin/python -m index_tts.tools.make_model_dir /tmp/fullsize --config official   # ~6.5 GB
    .venv/bin/python -m tests.bench_model_store /tmp/fullsize /tmp/fullsize-hub

Serves the flat model folder as the manifest's five repos on 127.0.0.1, runs
`python -m index_tts download` into an empty hub cache, then `python -m index_tts doctor --verify`
on it, each in a fresh process, and prints bytes, seconds and MB/s. Delete both folders after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.hub_server import HubServer
from tests.test_model_store import repos_from

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "index_tts", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return seconds


def main(model_dir: str, cache_dir: str) -> None:
    model_dir, cache = Path(model_dir), Path(cache_dir)
    shutil.rmtree(cache, ignore_errors=True)
    source = {p.relative_to(model_dir).as_posix(): p for p in model_dir.rglob("*") if p.is_file()}
    with HubServer(repos_from(source)) as hub:
        for repo in hub.repos.values():  # hash up front, so the timing is the transfer only
            for path in repo.files.values():
                hub.meta(path)
        total = sum(hub.meta(p)["size"] for r in hub.repos.values() for p in r.files.values())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INDEX_TTS_", "HF_"))}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HOME=str(cache.parent / "bench-hf-home"))
        seconds = timed(["download", "--cache-hub", str(cache)], env)
    print(f"download: {total / 1e9:.2f} GB in {seconds:.1f} s = {total / 1e6 / seconds:.0f} MB/s (incl. process start)")
    seconds = timed(["doctor", "--verify", "--cache-hub", str(cache)], env)
    print(f"doctor --verify (hub cache): {total / 1e9:.2f} GB in {seconds:.1f} s = {total / 1e6 / seconds:.0f} MB/s")


if __name__ == "__main__":
    main(*sys.argv[1:3])
