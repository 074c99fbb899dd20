"""python -m index_tts.bench.scale_out [--clips 20] [--requests 20] [--engine quick] [--json out.json]

Scale-out figures for docs/scale-out.md, with the quick voice by default (no weights needed):

- batch: `--clips` project segments (clips) rendered in this process (LocalRunner) and by a
  RayRunner with 1 and with 2 actors; clips per second, and the Ray overhead per segment
  ((1 actor - in process) / clips: shipping the clip and its audio, scheduling, the actor's
  own Synthesizer);
- serving: `--requests` concurrent /v1/audio/speech requests to `python -m index_tts serve`
  without Ray, and with `--ray local --replicas 1` and `--replicas 2` (every request admitted:
  --max-queue is set above the request count); requests per second.

Each Ray setup starts its own local Ray instance and is timed after it is up and warm (the
engines loaded, one clip or request rendered). The machine's CPU and its load average before and
after each figure are printed: on a shared machine, read figures taken under load with care.
Needs the Ray extra (requirements-ray.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from index_tts.fileio import atomic_write_text
from index_tts.scale.ray_runner import RayRunner
from index_tts.service import GenerationParams, Synthesizer, choose_engine
from index_tts.service.clips import LocalRunner, make_clip

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["Chapter {i} begins on a quiet morning by the river.",
             "The old ferryman counted the boats as they passed, one after another.",
             "Nobody in the village remembered a winter as long as that one.",
             "She closed the book, looked at the clock, and decided to walk home."]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} vCPUs"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def write_voice(path: Path, sr: int = 16000) -> Path:
    """A buzzy vowel with vibrato, which the quick voice accepts as a reference."""
    t = np.arange(2 * sr) / sr
    phase = 2 * np.pi * np.cumsum(140 + 12 * np.sin(2 * np.pi * 3 * t)) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 15))
    sf.write(path, (0.25 * wave / np.abs(wave).max()).astype(np.float32), sr)
    return path


def timed(label: str, work) -> dict:
    before = load()
    started = time.perf_counter()
    count = work()
    wall = time.perf_counter() - started
    row = {"setup": label, "items": count, "wall_s": round(wall, 2), "per_s": round(count / wall, 3),
           "load_before": before, "load_after": load()}
    print(f"  {label:<34} {count} in {wall:6.1f} s = {count / wall:5.2f}/s   load avg {before} -> {row['load_after']}",
          flush=True)
    return row


# -- batch ------------------------------------------------------------------------------------

def batch(engine_kwargs: dict, n: int, folder: Path) -> list[dict]:
    voice = write_voice(folder / "voice.wav")
    factory, reason, _ = choose_engine(**engine_kwargs)
    synth = Synthesizer(factory, data_dir=folder / "data", selection_reason=reason).start()
    if synth.wait_until_loaded() != "ready":
        raise SystemExit(f"the engine did not load: {synth.status().error}")
    generation = GenerationParams(max_mel_tokens=300)
    clips = [make_clip(synth, SENTENCES[i % len(SENTENCES)].format(i=i + 1) + f" Part {i + 1}.", voice, seed=i,
                       generation=generation) for i in range(n)]
    warm = make_clip(synth, "A warm-up sentence.", voice, seed=0, generation=generation)

    def render(runner) -> int:
        done = []
        runner.run(clips, lambda clip, audio: done.append(len(audio)), lambda: None)
        return len(done)

    print(f"batch: {n} clips ({reason})")
    local = LocalRunner(synth)
    local.run([warm], lambda clip, audio: None, lambda: None)
    rows = [timed("in this process (LocalRunner)", lambda: render(local))]
    for actors in (1, 2):
        with RayRunner("local", engine_kwargs, actors=actors) as runner:
            runner.run([warm] * actors, lambda clip, audio: None, lambda: None)
            rows.append(timed(f"RayRunner, {actors} actor{'s' * (actors > 1)}", lambda: render(runner)))
    overhead = (rows[1]["wall_s"] - rows[0]["wall_s"]) / n
    print(f"  Ray overhead per segment (1 actor - in process): {overhead * 1000:.0f} ms")
    rows.append({"setup": "ray overhead per segment", "ms": round(overhead * 1000)})
    return rows


# -- serving ----------------------------------------------------------------------------------

def post_speech(url: str, text: str) -> int:
    body = json.dumps({"model": "tts-1", "input": text, "voice": "narrator", "response_format": "wav"}).encode()
    request = urllib.request.Request(f"{url}/v1/audio/speech", body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def serving(engine: str, n: int, folder: Path, port: int) -> list[dict]:
    data = folder / "serve-data"
    factory, reason, _ = choose_engine(engine, None, None, None)
    Synthesizer(factory, data_dir=data).save_voice("narrator", str(write_voice(folder / "narrator.wav")), overwrite=True)
    texts = [SENTENCES[i % len(SENTENCES)].format(i=i + 1) + f" Request {i + 1}." for i in range(n)]
    print(f"serving: {n} concurrent requests ({engine} engine)")
    rows = []
    for label, extra in (("one process, no Ray", []), ("Ray Serve, 1 replica", ["--ray", "local", "--replicas", "1"]),
                         ("Ray Serve, 2 replicas", ["--ray", "local", "--replicas", "2"])):
        command = [sys.executable, "-m", "index_tts", "serve", "--port", str(port), "--engine", engine,
                   "--data-dir", str(data), "--max-queue", str(n), *extra]
        with open(folder / "server.log", "ab") as log:
            server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, server)
            post_speech(url, "A warm-up request.")
            with ThreadPoolExecutor(n) as pool:
                row = timed(label, lambda: sum(s == 200 for s in pool.map(lambda t: post_speech(url, t), texts)))
            rows.append(row)
        finally:
            server.terminate()
            server.wait(60)
    return rows


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} was not ready after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m index_tts.bench.scale_out", description=__doc__.split("\n\n")[1])
    p.add_argument("--clips", type=int, default=20, help="segments in the batch figure (default 20)")
    p.add_argument("--requests", type=int, default=20, help="concurrent API requests (default 20)")
    p.add_argument("--engine", default="quick", choices=["quick", "indextts2", "auto"])
    p.add_argument("--model-dir", default=None, help="a flat IndexTTS2 model folder (with --engine indextts2)")
    p.add_argument("--port", type=int, default=7871)
    p.add_argument("--skip", choices=["batch", "serving"], default=None)
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    print(f"CPU: {cpu_name()}; load average (1/5/15 min) {load()}")
    figures: dict = {"cpu": cpu_name()}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        if args.skip != "batch":
            kwargs = dict(engine=args.engine, model_dir=args.model_dir, cache_hub=None, revision=None)
            figures["batch"] = batch(kwargs, args.clips, Path(tmp))
        if args.skip != "serving":
            figures["serving"] = serving(args.engine, args.requests, Path(tmp), args.port)
    if args.json:
        atomic_write_text(args.json, json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
