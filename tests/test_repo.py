"""The repository tests itself: what the tests read is inside it, and it stays small enough to clone."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions, requires
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


# ---------------------------------------------------------------------------------------------
# Dependencies: requirements.txt lists what the app imports, requirements-dev.txt what only tests do.

# Imported by the app but deliberately not pinned: each is part of the API of a pinned package,
# which requires it (checked below) and fixes its version.
COMES_WITH = {"pydantic": "fastapi", "starlette": "fastapi", "httpx2": "huggingface-hub", "tqdm": "huggingface-hub",
              "regex": "tiktoken"}  # tiktoken's own pattern engine; the tiny 2.5 rank file is trained with it
# Pinned but not imported by our code: what the app imports needs it at import time.
NEEDED_BY = {"setuptools": "pyworld",  # pyworld 0.3.5 imports pkg_resources
             "unidic-lite": "fugashi"}  # the dictionary fugashi loads for IndexTTS-2.5's Japanese
# Issue #12's budget was 17 for IndexTTS2 and the quick voice; IndexTTS-2.5 adds tiktoken, fugashi
# and unidic-lite; long-form projects add mutagen (the audiobook's ID3 chapter frames: CHAP/CTOC
# are beyond libsndfile, and writing ID3v2 frames by hand is a format we would then own).
MAX_RUNTIME_PINS = 21


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.append(canonical(re.split(r"[<>=!~\[; ]", line)[0]))
    return names


def imported_distributions(paths: list[Path]) -> set[str]:
    """Distributions providing the third-party modules `paths` import (lazy imports included)."""
    providers = packages_distributions()
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                first = name.split(".")[0]
                if first in sys.stdlib_module_names or first in ("__future__", "index_tts", "tests", "webui"):
                    continue
                assert first in providers, f"{path.relative_to(ROOT)} imports {first}, which no installed distribution provides"
                found |= {canonical(d) for d in providers[first]}
    return found


# index_tts/scale is the Ray extra (requirements-ray.txt): the app runs without it.
RAY_SOURCES = sorted((ROOT / "index_tts" / "scale").rglob("*.py"))
APP_SOURCES = [p for p in sorted((ROOT / "index_tts").rglob("*.py")) if p not in RAY_SOURCES] + [ROOT / "webui.py"]
TEST_SOURCES = sorted((ROOT / "tests").rglob("*.py"))


def test_every_runtime_pin_is_imported_by_the_app_and_every_import_is_pinned():
    runtime = pins(ROOT / "requirements.txt")
    assert len(runtime) == len(set(runtime)) and len(runtime) <= MAX_RUNTIME_PINS, runtime
    used = imported_distributions(APP_SOURCES)
    assert sorted(set(runtime) - used - set(NEEDED_BY)) == []  # pinned, never imported
    assert sorted(used - set(runtime) - set(COMES_WITH)) == []  # imported, never pinned
    for module, parent in COMES_WITH.items():
        assert parent in runtime
        assert any(canonical(re.split(r"[<>=!~\[; ]", r)[0]) == module for r in requires(parent)), (module, parent)


def test_test_only_packages_are_dev_pins():
    runtime, dev = set(pins(ROOT / "requirements.txt")), pins(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert not runtime & set(dev), "a package is pinned twice"
    test_only = imported_distributions(TEST_SOURCES) - imported_distributions(APP_SOURCES + RAY_SOURCES)
    assert sorted(test_only - set(dev)) == []
    assert sorted(set(dev) - test_only) == []


def test_the_ray_extra_pins_what_index_tts_scale_imports_and_nothing_else_needs_it():
    text = (ROOT / "requirements-ray.txt").read_text(encoding="utf-8")
    extra = pins(ROOT / "requirements-ray.txt")
    assert not [line for line in text.splitlines() if line.startswith("-")]  # an add-on, installed beside requirements.txt (run_tests.sh installs both)
    runtime, dev = set(pins(ROOT / "requirements.txt")), set(pins(ROOT / "requirements-dev.txt"))
    assert not set(extra) & (runtime | dev), "a package is pinned twice"
    assert sorted(imported_distributions(RAY_SOURCES) - runtime) == sorted(extra) == ["ray"]
    assert "ray" not in imported_distributions(APP_SOURCES)  # the studio starts without Ray
    assert "[serve]" in text  # the serving replicas need Ray Serve
