"""The repository tests itself: what the tests read is inside it, and it stays small enough to clone."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MAX_FILE_BYTES = 8 * 1024 * 1024
OUTSIDE = "../" + "shared"  # spelled in two parts so this file does not match itself


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode("utf-8").split("\0") if name]


def test_no_tracked_file_is_over_8_mb():
    files = tracked_files()
    assert len(files) > 100  # a real listing, not an empty one
    big = [f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes" for p in files if p.is_file() and p.stat().st_size > MAX_FILE_BYTES]
    assert big == []


def test_each_fixture_set_is_in_the_repo_with_its_readme():
    for name in ("indextts2", "indextts25"):
        assert (FIXTURES / name / "README.md").is_file(), name
        assert len(list((FIXTURES / name).glob("*.pt"))) >= 10, name
    for name in ("checkpoint-manifest", "checkpoint-manifest-2.5"):
        assert (FIXTURES / name / "README.md").is_file(), name
        assert (FIXTURES / name / "gpt.pth.json").is_file(), name


def test_no_test_reads_beside_the_clone():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py") if OUTSIDE in p.read_text(encoding="utf-8")]
    assert offenders == []
