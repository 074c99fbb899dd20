"""A real studio server for the HTTP tests: `python webui.py` on a free loopback port, in a
subprocess, with its own data folder. Not a test module (no test_ prefix)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_voice(path: Path, f0: float = 130.0, seconds: float = 2.0, sr: int = 16000) -> Path:
    """A buzzy vowel with vibrato: something both engines accept as a voice."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 + 15 * np.sin(2 * np.pi * 3 * t)) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 15))
    sf.write(path, (0.25 * wave / np.abs(wave).max()).astype(np.float32), sr)
    return path


class StudioServer:
    """`wait_for`: the route that must answer 200 before the constructor returns: /readyz (the
    engine is loaded) or /healthz (the process serves, the engine may still be loading).
    `program`: what python runs, webui.py or e.g. ("-m", "index_tts", "serve")."""

    def __init__(self, data_dir: Path, *extra: str, token: str | None = None, ready_timeout: float = 180,
                 wait_for: str = "/readyz", program: tuple[str, ...] = ("webui.py",)):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.log = data_dir.parent / f"server-{self.port}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("INDEX_TTS_TOKEN", None)
        if token:
            env["INDEX_TTS_TOKEN"] = token
        self.proc = subprocess.Popen(
            [sys.executable, *program, "--port", str(self.port), "--data-dir", str(data_dir), "--engine", "quick", *extra],
            cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webui.py exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}{wait_for}", headers=self.headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"webui.py did not answer {wait_for}:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.proc.poll() is None and httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=kwargs.pop("timeout", 60), **kwargs)

    def leftovers(self) -> list[str]:
        """Temporary files anywhere in the data folder: uploads (tmp/gradio is Gradio's cache) and
        unfinished atomic writes."""
        found = [p for p in (self.data_dir / "tmp").glob("*") if p.is_file()]
        found += [p for p in self.data_dir.rglob("*.tmp")]
        return sorted(str(p.relative_to(self.data_dir)) for p in found)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
