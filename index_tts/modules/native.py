"""Our compiled CPU kernels, built once for this CPU and called via ctypes: `panel_linear.c`
(few-row linear layers), `decode_attention.c` (one decode step's attention over the KV cache),
`gpt_decode.c` (a decode step's GPT-2 blocks on those two), `multinomial.c` (beam sampling's
draw, checked by multinomial.py), `score_filter.c` (its score processing, checked by
score_filter.py), `alias_free.c` (BigVGAN's anti-aliased activation), `dit_fused.c` (the DiT's
elementwise steps between bf16 products) and `dit_attention.c` (its attention on AMX tiles), with
`vector_math.h` and `amx.h`.

They need a C compiler (`$CC`, else `cc`/`gcc`) and torch's bundled OpenMP runtime (Linux
wheels); without them the kernels are simply not used (torch's run instead) and
`unavailable_reason()` says why. The library is built at first use into the user cache
(`~/.cache/index_tts/native-<hash>.so`, keyed by the sources, the compiler, the CPU and torch),
linked to torch's OpenMP runtime so that its threads are torch's, and checked against torch's
results before it is used.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

SOURCES = tuple(Path(__file__).with_name(name) for name in ("panel_linear.c", "decode_attention.c", "gpt_decode.c",
                                                                 "multinomial.c", "score_filter.c", "alias_free.c",
                                                                 "dit_fused.c", "dit_attention.c"))
HEADERS = tuple(Path(__file__).with_name(name) for name in ("vector_math.h", "panel_linear.h", "amx.h"))
_lock = threading.RLock()  # re-entered by the self-checks, which call back through library()
_state: dict = {}  # "lib" (a CDLL or None) and "reason" once tried

_P, _I, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
SIGNATURES = {  # name: (argument types, return type)
    "panel_linear_f32": ([_P, _I, _I, _P, _P, _P, _I, _I], None),
    "panel_linear_bf16": ([_P, _I, _I, _P, _P, _P, _I, _I], None),
    "panel_linear_threads": ([], _I),
    "panel_linear_stream_sum": ([_P, ctypes.c_size_t], _F),
    "panel_linear_bf16_tiled": ([_I], _I),
    "panel_linear_bf16_pack": ([_P, _I, _I, _P], None),
    "alias_free_snake": ([_P, _I, _I, _P, _P, _P, _P, _P], _I),
    "dit_adaptive_rms_bf16": ([_P, _I, _I, _I, _P, _P, _F, _P], None),
    "dit_swiglu_bf16": ([_P, _P, ctypes.c_long, _P], None),
    "dit_rope_heads_bf16": ([_P, _I, _I, _I, _I, _I, _P, _P, _P, _P, _P], None),
    "dit_attention_tiled": ([_I, _I], _I),
    "dit_attention_bf16": ([_P, _P, _P, _I, _I, _I, _I, _F, _P], _I),
    "decode_attention": ([_P, _I, _I, _I, _P, _I, _I, _P, _I, _I, _F, _P], _I),
    "gpt2_decode_blocks": ([_P, _I, _I, _P, _I, _I, _I, _I, _F, _I, _I, _P, _I, _I], _I),
    "gpt_decode_stall_for_tests": ([_I, _I, _I], None),
    "gpt_decode_helped": ([], _I),
    "multinomial_draw": ([_P, _I, _I, _P, _P], _I),
    "score_filter_top_k": ([_P, _P, _I, _I, _F, _F, _I, _P, _P, _P, _P], _I),
    "score_filter_top_p": ([_P, _I, _I, _I, _F, _I, _P, _P], None),
}


def _torch_openmp() -> Path | None:
    lib = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    return lib if lib.is_file() else None


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def sources_digest() -> str:
    """A digest of the C sources (kernel timings and built libraries are per version of them)."""
    return hashlib.sha256("\n".join(s.read_text() for s in SOURCES + HEADERS).encode()).hexdigest()[:16]


def _library_path(compiler: str) -> Path:
    from index_tts.modules.kernels import cpu_info

    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = "\n".join([sources_digest(), version.splitlines()[0] if version else compiler, repr(cpu_info()), torch.__version__])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "index_tts" / f"native-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def _build(compiler: str, openmp: Path, target: Path) -> None:
    """Compile with OpenMP, link against torch's runtime, and move into place atomically
    (another process may be building the same file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        objects = [Path(tmp) / f"{source.stem}.o" for source in SOURCES]
        lib = Path(tmp) / "native.so"
        commands = [[compiler, "-O3", "-march=native", "-fopenmp", "-fPIC", "-c", str(source), "-o", str(obj)]
                    for source, obj in zip(SOURCES, objects)]
        commands.append([compiler, "-shared", *map(str, objects), "-o", str(lib), f"-L{openmp.parent}",
                         f"-Wl,-rpath,{openmp.parent}", f"-l:{openmp.name}", "-lm"])
        for cmd in commands:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[:2])} failed: {done.stderr.strip()[-400:]}")
        os.replace(lib, target)


def _load() -> ctypes.CDLL:
    from index_tts.modules import alias_free, dit_attention, dit_fused, gpt_decode, kv_cache, panel_linear

    compiler, openmp = _compiler(), _torch_openmp()
    if compiler is None:
        raise RuntimeError("no C compiler (set CC, or install gcc)")
    if openmp is None:
        raise RuntimeError("this torch build has no bundled OpenMP runtime (libgomp.so.1)")
    path = _library_path(compiler)
    if not path.is_file():
        _build(compiler, openmp, path)
    lib = ctypes.CDLL(str(path))
    for name, (args, result) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, result
    _state["lib"], _state["checking"] = lib, True  # the self-checks below call through it
    try:
        panel_linear.self_check()
        alias_free.self_check()
        dit_fused.self_check()
        dit_attention.self_check()
        kv_cache.self_check()
        gpt_decode.self_check()
    finally:
        _state["checking"] = False
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first call; None where they cannot be (see unavailable_reason)."""
    if "reason" not in _state:
        with _lock:
            if _state.get("checking"):  # a self-check on this thread: the library under test
                return _state["lib"]
            if "reason" not in _state:
                try:
                    _state["lib"], _state["reason"] = _load(), None
                except (RuntimeError, OSError, subprocess.SubprocessError, AttributeError) as exc:
                    _state["lib"], _state["reason"] = None, f"{type(exc).__name__}: {exc}"
    return _state["lib"]


def available() -> bool:
    return library() is not None


def unavailable_reason() -> str | None:
    library()
    return _state["reason"]


def checked_once(state: dict, lock: threading.Lock, check) -> str | None:
    """For a C path that must match torch: None once `check()` has passed, else why it is not
    used (the kernels unavailable, or what the check found). Runs the check once per process;
    `state` keeps the answer under "reason"."""
    if "reason" not in state:
        with lock:
            if "reason" not in state:
                state["reason"] = unavailable_reason() or check()
    return state["reason"]
