"""Runs every fixture file in $INDEX_TTS_FIXTURES (default: tests/fixtures/indextts2 and
tests/fixtures/indextts25), one test per file. A fixture of a kind with no runner fails."""

import pytest

from tests.conformance import runners  # noqa: F401  (registers the runners)
from tests.conformance.harness import FIXTURE_DIRS, RUNNERS, fixture_files, load_case

FILES = fixture_files()


def test_fixture_directory_is_not_empty():
    assert FILES, f"no fixture files found in {[str(d) for d in FIXTURE_DIRS]} (set INDEX_TTS_FIXTURES)"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_fixture(path):
    case = load_case(path)
    kind = case["kind"]
    assert kind in RUNNERS, f"{path.name}: no runner for fixture kind {kind!r} (known: {sorted(RUNNERS)})"
    RUNNERS[kind](case)
