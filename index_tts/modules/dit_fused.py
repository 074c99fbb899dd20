"""The DiT's elementwise steps between its bf16 linear layers, one pass each (`dit_fused.c`), called
via ctypes where the compiled kernels are available (`native`), for CPU tensors only (CUDA's
autocast also gives the DiT bf16 activations: those stay on torch's ops).

Only the reduced modes' bf16 chain calls them (dit.py, where the next linear layer multiplies in
bf16): they take and give what torch's ops there would, rounded to bf16 once instead of after each
op. `self_check` holds them to torch's ops when the library loads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from index_tts.modules import native

LANES = 16  # dit_fused.c's vectors: widths must be multiples of this
MAX_HEAD_DIM = 256


def available() -> bool:
    return native.available()


def adaptive_rms_bf16(x: Tensor, modulation: Tensor, weight: Tensor, eps: float) -> Tensor | None:
    """scale * RMSNorm(x) + shift in bf16: x [B, T, D] fp32, modulation [B, 1, 2D] fp32 (scale |
    shift), weight [D] -> [B, T, D] bf16; None where the kernel does not take these shapes."""
    B, T, D = x.shape
    if x.device.type != "cpu" or D % LANES or modulation.shape[0] != B or modulation.shape[-1] != 2 * D or x.dtype != torch.float32:
        return None
    x, modulation, weight = x.contiguous(), modulation.float().contiguous(), weight.detach().float().contiguous()
    y = torch.empty(B, T, D, dtype=torch.bfloat16)
    native.library().dit_adaptive_rms_bf16(x.data_ptr(), B, T, D, modulation.data_ptr(), weight.data_ptr(), eps, y.data_ptr())
    return y


def swiglu_bf16(a: Tensor, b: Tensor) -> Tensor | None:
    """silu(a) * b for bf16 a, b of one shape -> bf16; None where the kernel does not take them."""
    if (a.device.type != "cpu" or a.dtype != torch.bfloat16 or b.dtype != torch.bfloat16 or a.shape != b.shape
            or a.numel() % LANES):
        return None
    a, b = a.contiguous(), b.contiguous()
    y = torch.empty_like(a)
    native.library().dit_swiglu_bf16(a.data_ptr(), b.data_ptr(), a.numel(), y.data_ptr())
    return y


def rope_heads_bf16(qkv: Tensor, cos: Tensor, sin: Tensor, heads: int, queries_from: int = 0) -> tuple[Tensor, Tensor, Tensor] | None:
    """qkv [B, T, 3 * H * Dh] bf16, cos, sin [T, Dh / 2] -> q [B, H, T - queries_from, Dh], k, v
    [B, H, T, Dh] bf16, q and k rotated (dit.apply_rope); None where the kernel does not take them."""
    B, T, width = qkv.shape
    dh = width // (3 * heads)
    if qkv.device.type != "cpu" or qkv.dtype != torch.bfloat16 or dh % LANES or dh > MAX_HEAD_DIM or cos.shape != (T, dh // 2):
        return None
    qkv, cos, sin = qkv.contiguous(), cos.float().contiguous(), sin.float().contiguous()
    q = torch.empty(B, heads, T - queries_from, dh, dtype=torch.bfloat16)
    k, v = torch.empty(B, heads, T, dh, dtype=torch.bfloat16), torch.empty(B, heads, T, dh, dtype=torch.bfloat16)
    native.library().dit_rope_heads_bf16(qkv.data_ptr(), B, T, heads, dh, queries_from, cos.data_ptr(), sin.data_ptr(),
                                         q.data_ptr(), k.data_ptr(), v.data_ptr())
    return q, k, v


def self_check() -> None:
    """Raises unless the compiled kernels compute dit.py's torch ops up to bf16 rounding (run once,
    when the library loads)."""
    from index_tts.modules.dit import apply_rope, rope_cos_sin

    g = torch.Generator().manual_seed(0)

    def close(got: Tensor, want: Tensor, what: str) -> None:
        # one bf16 rounding against torch's one or two: at most ~2 units in the last place apart
        if got.dtype != torch.bfloat16 or not torch.allclose(got.float(), want.float(), rtol=1.6e-2, atol=1e-2):
            raise RuntimeError(f"the compiled {what} disagrees with the torch ops: {(got.float() - want.float()).abs().max().item():.3g}")

    x = torch.randn(2, 5, 48, generator=g) * 3
    modulation = torch.randn(2, 1, 96, generator=g)
    weight = torch.randn(48, generator=g)
    rms = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight
    close(adaptive_rms_bf16(x, modulation, weight, 1e-5), modulation[..., :48] * rms + modulation[..., 48:], "adaptive RMSNorm")

    a, b = (torch.randn(3, 7, 32, generator=g).mul(6).bfloat16() for _ in range(2))
    close(swiglu_bf16(a, b), (F.silu(a.float()) * b.float()), "SwiGLU gate")

    heads, dh, T = 3, 32, 9
    qkv = torch.randn(2, T, 3 * heads * dh, generator=g).bfloat16()
    cos, sin = rope_cos_sin(torch.arange(T), dh)
    q, k, v = qkv.float().view(2, T, 3, heads, dh).unbind(2)
    got = rope_heads_bf16(qkv, cos, sin, heads, queries_from=4)
    want = (apply_rope(q[:, 4:], cos[4:], sin[4:]), apply_rope(k, cos, sin), v)
    for name, got_part, want_part in zip("qkv", got, want):
        close(got_part, want_part.transpose(1, 2), f"RoPE ({name})")
