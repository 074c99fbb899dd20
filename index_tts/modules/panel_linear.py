"""Our own few-row linear kernel (`panel_linear.c`, built by `native`), called via ctypes.

The GPT's beam-3 decode step is a 3-row product with every GPT weight: its time is the time to
stream the weights from memory, and torch's kernels (oneDNN, MKL) read them at well under the
machine's bandwidth at 3 rows. The C kernel reads each weight as one sequential stream of 64-column
panels (layout in panel_linear.c). It is a kernel candidate like the others (`modules/kernels.py`):
chosen per layer class only where it measured fastest on this machine, and only where
`native.available()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from index_tts.modules import huge_pages, native

COLS = 64  # output columns per panel (panel_linear.c)
TRIM_EVERY = 64 << 20  # bytes of old panels freed between hand-backs (hold_in_huge_pages)
STORE = 0  # panel_linear.c's epilogue: y = x W^T + b
MANY_ROWS = 32  # from here on fp32 panels are multiplied by torch (`linear`)


def self_check() -> None:
    """Raises unless the compiled kernel computes F.linear (run once, when the library loads)."""
    g = torch.Generator().manual_seed(0)
    for k in (45, 64):  # 64: the bf16 tiles, where the CPU has AMX
        w, b = torch.randn(37, k, generator=g), torch.randn(37, generator=g)
        for rows in (1, 3, 6, 17):
            x = torch.randn(rows, k, generator=g)
            for dtype in (torch.float32, torch.bfloat16):
                want = F.linear(rows_as_multiplied(x, dtype), w.to(dtype).float(), b)
                got = linear(x, pack(w, dtype), b, 37)
                if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
                    raise RuntimeError(f"the compiled kernel disagrees with F.linear ({dtype}, {rows} rows, k {k})")


def tiled(k: int) -> bool:
    """Whether bf16 panels of `k` inputs are AMX tiles (panel_linear.c), whose kernel multiplies
    the rows rounded to bf16; otherwise they are plain panels and the rows stay fp32."""
    lib = native.library()
    return lib is not None and bool(lib.panel_linear_bf16_tiled(k))


def rows_as_multiplied(x: Tensor, dtype: torch.dtype) -> Tensor:
    """x [m, k] as the kernel multiplies it with panels of `dtype` (rounded to bf16 on tiles)."""
    return x.bfloat16().float() if dtype == torch.bfloat16 and tiled(x.size(-1)) else x


def pack(w_out_in: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """W [n, k] -> panels [ceil(n / 64), k, 64] in `dtype` (float32 or bfloat16), zero-padded."""
    n, k = w_out_in.shape
    panels = -(-n // COLS)
    padded = w_out_in.new_zeros(panels * COLS, k, dtype=torch.float32)
    padded[:n] = w_out_in
    fp32 = padded.view(panels, COLS, k).transpose(1, 2).contiguous()
    return fp32 if dtype == torch.float32 else to_bf16(fp32)


def to_bf16(panels: Tensor) -> Tensor:
    """fp32 panels -> the bf16 panels the kernel reads (same shape): AMX tiles where `tiled`,
    else the same layout rounded."""
    p, k, cols = panels.shape
    if not tiled(k):
        return panels.bfloat16()
    out = torch.empty(p, k, cols, dtype=torch.bfloat16)
    native.library().panel_linear_bf16_pack(panels.contiguous().data_ptr(), p, k, out.data_ptr())
    return out


def hold_in_huge_pages(layers: list) -> None:
    """Move the panels of `layers` (KernelLinear) into one buffer of 2 MB pages (huge_pages): the
    decode step streams all of them every step. Same values. Each layer's old panels are freed as
    it moves, and handed back to the system every 64 MB, so that the load's peak does not hold
    both copies."""
    layers = [layer for layer in layers if layer.panels is not None]
    buffer = huge_pages.empty(sum(layer.panels.numel() * layer.panels.element_size() for layer in layers))
    start = freed = 0
    for layer in layers:
        old = layer.panels
        size = old.numel() * old.element_size()
        layer.panels = buffer[start:start + size].view(old.dtype).view(old.shape).copy_(old)
        del old
        start, freed = start + size, freed + size
        if freed >= TRIM_EVERY:
            huge_pages.return_freed_memory()
            freed = 0
    huge_pages.return_freed_memory()


def unpack(panels: Tensor, n: int) -> Tensor:
    """The inverse of `pack`: W [n, k] in float32."""
    p, k, cols = panels.shape
    if panels.dtype == torch.bfloat16 and tiled(k):  # [p][k/32][4 groups][16 pairs][16 columns][2] -> [p][k][64]
        panels = panels.reshape(p, k // 32, 4, 16, 16, 2).permute(0, 1, 3, 5, 2, 4).reshape(p, k, cols)
    return panels.transpose(1, 2).reshape(p * cols, k)[:n].float()


def linear(x: Tensor, panels: Tensor, bias: Tensor | None, n: int) -> Tensor:
    """x [m, k] (float32) times the packed W, plus bias -> [m, n] (float32)."""
    lib = native._state["lib"]  # loaded: the layer was only given panels where available()
    x = x.contiguous()
    if x.dtype != torch.float32:
        raise TypeError(f"panel_linear takes float32 rows, got {x.dtype}")
    if x.size(0) >= MANY_ROWS and panels.dtype == torch.float32:
        # Many rows (the GPT's prefill and latent pass): each fp32 panel is a [k, 64] matrix, and
        # one batched product of all of them by x ran 5-20 % faster than our kernel's 4-row passes.
        y = torch.matmul(x, panels).transpose(0, 1).reshape(x.size(0), -1)[:, :n]  # [m, n]
        return y + bias if bias is not None else y.contiguous()
    y = torch.empty(x.size(0), n, dtype=torch.float32)
    fn = lib.panel_linear_bf16 if panels.dtype == torch.bfloat16 else lib.panel_linear_f32
    bias_ptr = None if bias is None else bias.contiguous().data_ptr()
    fn(x.data_ptr(), x.size(0), x.size(1), panels.data_ptr(), bias_ptr, y.data_ptr(), n, STORE)
    return y
