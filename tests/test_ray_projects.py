"""`python -m index_tts project render ... --ray local`: a book rendered on Ray actors is the book
rendered in one process, sample for sample, with the tiny IndexTTS2 model.

The CLI starts (and stops) its own local Ray instance; the projects' own tests cover the rest of
the command (tests/test_projects.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.http_server import write_voice

ROOT = Path(__file__).resolve().parents[1]
BOOK = """# The Beginning

It was a quiet morning. The birds sang.

# The Middle

[happy] Everything went well.

# The End

And that was all.
"""


def render(book: Path, voice: Path, model_dir: Path, out: Path, data: Path, *extra: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "index_tts", "project", "render", str(book), "--voice", str(voice),
                           "--engine", "indextts2", "--model-dir", str(model_dir), "--seed", "11", "--format", "wav",
                           "--out", str(out), "--data-dir", str(data), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_book_rendered_on_ray_is_sample_identical_to_one_rendered_here(tiny_model_dir, tmp_path):
    book = tmp_path / "tale.md"
    book.write_text(BOOK)
    voice = write_voice(tmp_path / "voice.wav")
    render(book, voice, tiny_model_dir, tmp_path / "here", tmp_path / "data-here")
    output = render(book, voice, tiny_model_dir, tmp_path / "ray", tmp_path / "data-ray", "--ray", "local")
    assert "3 chapters" in output
    chapters = sorted(p.name for p in (tmp_path / "here").glob("*.wav"))
    assert len(chapters) == 3 and chapters == sorted(p.name for p in (tmp_path / "ray").glob("*.wav"))
    for name in chapters:
        here, _ = sf.read(tmp_path / "here" / name, dtype="int16")
        there, _ = sf.read(tmp_path / "ray" / name, dtype="int16")
        assert len(here) > 0
        np.testing.assert_array_equal(there, here)
