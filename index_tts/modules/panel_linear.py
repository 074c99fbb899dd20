"""Our own few-row linear kernel (`panel_linear.c`), compiled once for this CPU, called via ctypes.

The GPT's beam-3 decode step is a 3-row product with every GPT weight: its time is the time to
stream the weights from memory, and torch's kernels (oneDNN, MKL) read them at well under the
machine's bandwidth at 3 rows. The C kernel reads each weight as one sequential stream of 16-column
panels (layout in panel_linear.c). It is a kernel candidate like the others (`modules/kernels.py`):
chosen per layer class only where it measured fastest on this machine.

It needs a C compiler (`$CC`, else `cc`/`gcc`) and torch's bundled OpenMP runtime (Linux wheels);
without them the candidate is simply unavailable and `unavailable_reason()` says why. The library
is built at first use into the user cache (`~/.cache/index_tts/panel_linear-<hash>.so`, keyed by
the source, the compiler, the CPU and torch) and checked against `F.linear` before it is used.
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
import torch.nn.functional as F
from torch import Tensor

SOURCE = Path(__file__).with_name("panel_linear.c")
COLS = 16
_lock = threading.Lock()
_state: dict = {}  # "lib" (a CDLL or None) and "reason" once tried


def _torch_openmp() -> Path | None:
    lib = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    return lib if lib.is_file() else None


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _library_path(compiler: str) -> Path:
    from index_tts.modules.kernels import cpu_info

    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = "\n".join([SOURCE.read_text(), version.splitlines()[0] if version else compiler,
                     repr(cpu_info()), torch.__version__])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "index_tts" / f"panel_linear-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def _build(compiler: str, openmp: Path, target: Path) -> None:
    """Compile with OpenMP, link against torch's runtime (so the kernel's threads are torch's),
    and move into place atomically (another process may be building the same file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        obj, lib = Path(tmp) / "panel_linear.o", Path(tmp) / "panel_linear.so"
        for cmd in ([compiler, "-O3", "-march=native", "-fopenmp", "-fPIC", "-c", str(SOURCE), "-o", str(obj)],
                    [compiler, "-shared", str(obj), "-o", str(lib), f"-L{openmp.parent}",
                     f"-Wl,-rpath,{openmp.parent}", f"-l:{openmp.name}"]):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[:2])} failed: {done.stderr.strip()[-400:]}")
        os.replace(lib, target)


def _load() -> ctypes.CDLL:
    compiler, openmp = _compiler(), _torch_openmp()
    if compiler is None:
        raise RuntimeError("no C compiler (set CC, or install gcc)")
    if openmp is None:
        raise RuntimeError("this torch build has no bundled OpenMP runtime (libgomp.so.1)")
    path = _library_path(compiler)
    if not path.is_file():
        _build(compiler, openmp, path)
    lib = ctypes.CDLL(str(path))
    args = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    for fn in (lib.panel_linear_f32, lib.panel_linear_bf16):
        fn.argtypes, fn.restype = args, None
    _state["lib"] = lib  # the self-check below calls through it
    _self_check()
    return lib


def _self_check() -> None:
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(37, 45, generator=g), torch.randn(37, generator=g)
    for rows in (1, 3, 6):
        x = torch.randn(rows, 45, generator=g)
        for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 0.0)):
            want = F.linear(x, w.to(dtype).float(), b)
            got = linear(x, pack(w, dtype), b, 37)
            if not torch.allclose(got, want, atol=1e-4 + tol, rtol=1e-4):
                raise RuntimeError(f"the compiled kernel disagrees with F.linear ({dtype}, {rows} rows)")


def library() -> ctypes.CDLL | None:
    """The compiled kernel, built on first call; None where it cannot be (see unavailable_reason)."""
    if "reason" not in _state:
        with _lock:
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


def pack(w_out_in: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """W [n, k] -> panels [ceil(n / 16), k, 16] in `dtype` (float32 or bfloat16), zero-padded."""
    n, k = w_out_in.shape
    panels = -(-n // COLS)
    padded = w_out_in.new_zeros(panels * COLS, k, dtype=dtype)
    padded[:n] = w_out_in
    return padded.view(panels, COLS, k).transpose(1, 2).contiguous()


def unpack(panels: Tensor, n: int) -> Tensor:
    """The inverse of `pack`: W [n, k] in float32."""
    p, k, cols = panels.shape
    return panels.transpose(1, 2).reshape(p * cols, k)[:n].float()


def linear(x: Tensor, panels: Tensor, bias: Tensor | None, n: int) -> Tensor:
    """x [m, k] (float32) times the packed W, plus bias -> [m, n] (float32)."""
    lib = _state["lib"]
    x = x.contiguous()
    if x.dtype != torch.float32:
        raise TypeError(f"panel_linear takes float32 rows, got {x.dtype}")
    y = torch.empty(x.size(0), n, dtype=torch.float32)
    fn = lib.panel_linear_bf16 if panels.dtype == torch.bfloat16 else lib.panel_linear_f32
    bias_ptr = None if bias is None else bias.contiguous().data_ptr()
    fn(x.data_ptr(), x.size(0), x.size(1), panels.data_ptr(), bias_ptr, y.data_ptr(), n)
    return y
