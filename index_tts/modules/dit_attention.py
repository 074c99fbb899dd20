"""The DiT's attention on the AMX tile unit (`dit_attention.c`), for the reduced modes where it was
measured faster on this machine (engines/precision.py): bf16 q, k, v, fp32 sums and softmax, the
weights rounded to bf16 before the second product, as torch's flash kernel does on bf16.

Only for CPU tensors, a head size of 64 and one utterance (every frame a key: no mask); elsewhere
`available` is False or `attention_bf16` returns None, and the caller runs torch's kernel.
`self_check` holds it to torch's fp32 attention when the library loads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from index_tts.modules import native

HEAD_DIM = 64


def available(keys: int = 1) -> bool:
    """Whether the tile kernel runs here (a CPU with AMX that Linux lets us use) for this many keys."""
    lib = native.library()
    return lib is not None and bool(lib.dit_attention_tiled(HEAD_DIM, keys))


def attention_bf16(q: Tensor, k: Tensor, v: Tensor) -> Tensor | None:
    """softmax(q k^T / sqrt(Dh)) v: q [B, H, Tq, Dh], k, v [B, H, T, Dh] -> [B, Tq, H * Dh] bf16
    (the output projection's input layout); None where the kernel does not take these."""
    B, H, Tq, dh = q.shape
    T = k.size(2)
    if q.device.type != "cpu" or dh != HEAD_DIM or k.shape != (B, H, T, dh) or v.shape != k.shape or not available(T):
        return None
    q, k, v = (x.to(torch.bfloat16).contiguous() for x in (q, k, v))
    out = torch.empty(B, Tq, H * dh, dtype=torch.bfloat16)
    done = native.library().dit_attention_bf16(q.data_ptr(), k.data_ptr(), v.data_ptr(), B, H, Tq, T, dh**-0.5, out.data_ptr())
    return out if done else None


def self_check() -> None:
    """Raises unless the tile kernel computes torch's attention up to bf16 rounding (where it runs)."""
    if not available():
        return
    g = torch.Generator().manual_seed(0)
    for tq, t in ((37, 45), (16, 16), (5, 70)):  # partial query blocks, keys past a multiple of 32
        q, k, v = (torch.randn(2, 3, n, HEAD_DIM, generator=g).mul(2).bfloat16() for n in (tq, t, t))
        got = attention_bf16(q, k, v)
        want = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2).reshape(2, tq, -1)
        if got is None or not torch.allclose(got.float(), want, rtol=2e-2, atol=2e-2):
            error = "no result" if got is None else f"{(got.float() - want).abs().max().item():.3g}"
            raise RuntimeError(f"the compiled tile attention disagrees with torch's: {error}")
