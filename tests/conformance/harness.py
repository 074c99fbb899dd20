"""Conformance harness: loads fixture files, rebuilds their weights, compares outputs.

Fixture format: see tests/fixtures/indextts2/README.md. One runner per fixture kind lives in
`tests/conformance/runners/`; a runner registers itself with `@runner("kind")` and checks every
output with `check(case, name, actual)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURES_ROOT = REPO / "tests" / "fixtures"  # the copies this repo carries; see its README
FIXTURE_DIR = Path(os.environ.get("INDEX_TTS_FIXTURES", FIXTURES_ROOT / "indextts2"))
# Where the neural runners compute ("cuda:0" in the GPU acceptance check, index_tts.bench.gpu_check),
# always in fp32; the DSP and text runners stay on the CPU as the engine's front end does.
DEVICE = os.environ.get("INDEX_TTS_FIXTURE_DEVICE", "cpu")
# What test_fixtures runs: $INDEX_TTS_FIXTURES alone (any model version: each kind has its runner),
# else every set the repo carries, IndexTTS2 and IndexTTS-2.5.
FIXTURE_DIRS = [FIXTURE_DIR] if "INDEX_TTS_FIXTURES" in os.environ else [FIXTURE_DIR, FIXTURES_ROOT / "indextts25"]

RUNNERS: dict[str, Callable[[dict], None]] = {}

# Largest absolute error seen per (kind, output), for the summary printed at the end of the run.
MAX_ERRORS: dict[tuple[str, str], float] = {}


def runner(kind: str):
    def register(fn: Callable[[dict], None]) -> Callable[[dict], None]:
        if kind in RUNNERS:
            raise RuntimeError(f"two runners for fixture kind {kind!r}")
        RUNNERS[kind] = fn
        return fn

    return register


def on_device(value: Any) -> Any:
    """Tensors (also inside dicts, lists and tuples) moved to DEVICE."""
    if isinstance(value, torch.Tensor):
        return value.to(DEVICE)
    if isinstance(value, dict):
        return {k: on_device(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_device(v) for v in value)
    return value


def fixture_files() -> list[Path]:
    return sorted(p for d in FIXTURE_DIRS for p in d.glob("*.pt"))


def load_case(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


# ---------------------------------------------------------------------------------------------
# Weights


def materialize(rec: dict) -> dict[str, torch.Tensor]:
    """The fixture README's `seeded-normal-v1` recipe, implemented once for every test."""
    if rec.get("recipe") != "seeded-normal-v1":
        raise ValueError(f"unknown weight recipe {rec.get('recipe')!r}")
    out: dict[str, torch.Tensor] = {}
    for i, (key, shape, kind, std) in enumerate(rec["keys"]):
        g = torch.Generator().manual_seed(rec["seed"] * 1_000_003 + i)
        t = torch.randn(shape, generator=g, dtype=torch.float32)
        if kind == "normal":
            w = t * std
        elif kind == "one":
            w = 1.0 + t * std
        elif kind == "pos":
            w = 0.5 + t.abs() * std
        elif kind == "zero":
            w = torch.zeros(shape, dtype=torch.float32)
        else:
            raise ValueError(f"unknown recipe kind {kind!r} for {key}")
        out[key] = w
    for key, v in rec["buffers"].items():
        out[key] = v.clone()
    for key, (s, a) in rec.get("checks", {}).items():
        w = out[key].double()
        if not (_close(w.sum().item(), s) and _close(w.abs().sum().item(), a)):
            raise AssertionError(f"recipe regeneration mismatch for {key}")
    return out


def _close(x: float, y: float, rel: float = 1e-9) -> bool:
    return abs(x - y) <= rel * max(abs(x), abs(y), 1e-30) + 1e-12


def _nest(flat: dict[str, torch.Tensor]) -> dict:
    """`net/cfm/a.b` -> {"net": {"cfm": {"a.b": t}}}; keys without '/' stay flat."""
    out: dict = {}
    for key, v in flat.items():
        parts = key.split("/")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def state_dict(weights: Any) -> dict:
    """Weights in the official on-disk layout, from inline or recipe form."""
    if isinstance(weights, dict) and "recipe" in weights:
        return _nest(materialize(weights))
    return weights


def write_model_files(weights: dict, directory: Path) -> None:
    """Multi-file weights (`w2v_bert`, `text_frontend`, `pipeline`): write each file as the
    official layout stores it, so that the real loaders read them."""
    from safetensors.torch import save_file

    for name, value in weights.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".model"):  # SentencePiece model serialized as uint8 bytes
            path.write_bytes(value.numpy().tobytes())
            continue
        sd = state_dict(value)
        if name.endswith(".safetensors"):
            save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        else:
            torch.save(sd, path)


# ---------------------------------------------------------------------------------------------
# Comparison


def tolerance(case: dict, name: str) -> tuple[float, float]:
    tol = case.get("tolerance_per_output", {}).get(name, case["tolerance"])
    return float(tol["atol"]), float(tol["rtol"])


def check(case: dict, name: str, actual: Any, expected: Any = None) -> None:
    """Compare one output with the fixture's, by the README's rule:
    floats by |a - e| <= atol + rtol*|e|; ints, bools, strings and lists exactly, unless the
    case gives that integer output its own non-zero atol."""
    if expected is None:
        expected = case["outputs"][name]
    where = f"{case['name']}:{name}"
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            actual = torch.as_tensor(actual)
        actual = actual.detach().cpu()
        assert tuple(actual.shape) == tuple(expected.shape), f"{where}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        if expected.is_floating_point():
            atol, rtol = tolerance(case, name)
            a, e = actual.double(), expected.double()
            err = (a - e).abs()
            MAX_ERRORS[(case["kind"], name)] = max(MAX_ERRORS.get((case["kind"], name), 0.0), err.max().item() if err.numel() else 0.0)
            bad = err > atol + rtol * e.abs()
            assert not bad.any(), (
                f"{where}: {int(bad.sum())}/{bad.numel()} elements out of tolerance "
                f"(max err {err.max().item():.3g}, atol {atol:g}, rtol {rtol:g})"
            )
        elif name in case.get("tolerance_per_output", {}) and tolerance(case, name)[0] > 0:
            # An explicit integer tolerance: wav_int16 may flip by an LSB where the int16 cast
            # truncates a value that sits on an integer boundary.
            atol, _ = tolerance(case, name)
            err = (actual.long() - expected.long()).abs()
            MAX_ERRORS[(case["kind"], name)] = max(MAX_ERRORS.get((case["kind"], name), 0.0), float(err.max()) if err.numel() else 0.0)
            assert not (err > atol).any(), f"{where}: {int((err > atol).sum())} samples differ by more than {atol:g}"
        else:
            assert torch.equal(actual.to(expected.dtype), expected), f"{where}: integer/bool tensor differs"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
