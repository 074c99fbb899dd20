"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A complete IndexTTS2 model directory with tiny random weights, written once per session
    by the real tool (`python -m index_tts.tools.make_model_dir OUT --config tiny`)."""
    out = tmp_path_factory.mktemp("tiny-model") / "IndexTTS-2"
    made = subprocess.run([sys.executable, "-m", "index_tts.tools.make_model_dir", str(out), "--config", "tiny"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, f"make_model_dir failed ({made.returncode}):\n{made.stdout}\n{made.stderr}"
    return out


@pytest.fixture(scope="session")
def tiny25_model_dir(tmp_path_factory) -> Path:
    """The same for IndexTTS-2.5 (`make_model_dir OUT --config tiny-2.5`)."""
    out = tmp_path_factory.mktemp("tiny-model-25") / "IndexTTS-2.5"
    made = subprocess.run([sys.executable, "-m", "index_tts.tools.make_model_dir", str(out), "--config", "tiny-2.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, f"make_model_dir failed ({made.returncode}):\n{made.stdout}\n{made.stderr}"
    return out


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory):
    """One real server (quick voice, loopback, default limits) for the HTTP API tests, with a
    saved voice named "alice"."""
    from tests.http_server import StudioServer, write_voice

    root = tmp_path_factory.mktemp("studio-api")
    server = StudioServer(root / "data")
    try:
        with server.client() as client, write_voice(root / "alice.wav").open("rb") as f:
            created = client.post("/v1/voices", data={"name": "alice"}, files={"file": ("alice.wav", f, "audio/wav")})
            assert created.status_code == 201, created.text
        yield server
    finally:
        server.stop()
