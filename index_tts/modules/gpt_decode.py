"""A decode step's GPT-2 blocks in one call of our compiled kernel (`gpt_decode.c`).

Where every block's four linear layers stream panels (`KernelLinear.panels_now()`: the "panel"
kernel, or "panel_bf16" inside the fast mode's reduced precision) and our attention can read the
cache (`KVCache.native_attention`: fp32 on the CPU), `GPT2Body.step` runs all blocks in one C
call: the same arithmetic as its torch path up to summation order, without ~10 small torch ops
per block. Elsewhere (CUDA, other kernels, no compiler) `plan` says no and the torch path runs.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor, nn

from index_tts.modules import native
from index_tts.modules.kv_cache import KVCache

_LINEARS = ("qkv", "out", "fc", "proj")


class BlockWeights(ctypes.Structure):
    """gpt_decode.c's `struct block_weights`: one block's pointers."""

    _fields_ = [(name, ctypes.c_void_p) for name in (
        "ln1_weight", "ln1_bias", "ln2_weight", "ln2_bias", *_LINEARS, *(f"{n}_bias" for n in _LINEARS), "kv")]


class BlockPlan:
    """Pointers to every block's weights and cache, made once per cache (one generation)."""

    def __init__(self, body: nn.Module, cache: KVCache, panels: list[list[Tensor]], bf16: bool):
        first = body.h[0]
        self.d, self.heads = first.ln_1.weight.numel(), first.attn.heads
        self.inner, self.eps, self.bf16 = first.mlp.c_fc.out_features, first.ln_1.eps, bf16
        # The cache's tensors, not the cache: it holds this plan, and a reference cycle would keep
        # both (and the fast mode's 1 GB of bf16 panels) alive until the garbage collector ran.
        self.kv, self.origin = cache.kv, cache.origin
        self._keep = panels  # the bf16 panels exist while the plan runs
        self.blocks = (BlockWeights * len(body.h))()
        for i, (block, block_panels) in enumerate(zip(body.h, panels)):
            layers = (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj)
            fields = [block.ln_1.weight, block.ln_1.bias, block.ln_2.weight, block.ln_2.bias, *block_panels,
                      *(layer.bias for layer in layers), cache.kv[i]]
            for (name, _), tensor in zip(BlockWeights._fields_, fields):
                setattr(self.blocks[i], name, tensor.data_ptr())

    def run(self, x: Tensor, pos: int, n: int) -> Tensor:
        """x [B, d] (one row per cache row) through every block, keys and values written at `pos`,
        attending over positions 0..n-1 -> [B, d]."""
        x = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        failed = native._state["lib"].gpt2_decode_blocks(
            x.data_ptr(), x.size(0), len(self.blocks), self.blocks, self.d, self.heads, self.inner, int(self.bf16),
            self.eps, self.kv.size(2), self.kv.size(3), self.origin.data_ptr(), pos, n)
        if failed:
            raise MemoryError("gpt2_decode_blocks: out of memory")
        return x


def plan(body: nn.Module, cache: KVCache) -> BlockPlan | None:
    """The plan for this cache, made at its first step; None where the C step does not apply."""
    if cache.step_plan is None:
        cache.step_plan = native.available() and _make_plan(body, cache) or False
    return cache.step_plan or None


def _make_plan(body: nn.Module, cache: KVCache) -> BlockPlan | None:
    from index_tts.modules.packed_linear import KernelLinear

    if not cache.native_attention:
        return None
    panels = []
    for block in body.h:
        layers = (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj)
        if not all(isinstance(layer, KernelLinear) and layer.bias is not None for layer in layers):
            return None
        now = [layer.panels_now() for layer in layers]
        if any(p is None for p in now):
            return None
        panels.append(now)
    dtypes = {p.dtype for block_panels in panels for p in block_panels}
    eps = {m.eps for block in body.h for m in (block.ln_1, block.ln_2)}
    if len(dtypes) != 1 or len(eps) != 1:
        return None  # mixed fp32 / bf16 panels (or layer norms): the torch path handles those
    return BlockPlan(body, cache, panels, bf16=dtypes == {torch.bfloat16})


def self_check() -> None:
    """Raises unless the C step computes what the torch step does (run once, when the library loads)."""
    from index_tts.modules.packed_linear import KernelLinear
    from index_tts.modules.unified_voice import GPT2Body

    torch.manual_seed(0)
    body = GPT2Body(64, 2, 4).eval()
    with torch.no_grad():
        for block in body.h:
            for parent, name in ((block.attn, "c_attn"), (block.attn, "c_proj"), (block.mlp, "c_fc"), (block.mlp, "c_proj")):
                layer = getattr(parent, name)
                layer.bias.normal_()
                setattr(parent, name, KernelLinear(layer.weight, layer.bias, True, "panel", "panel"))
        x = torch.randn(3, 64)
        caches = [KVCache(2, 3, 4, 8, 16, torch.float32, torch.device("cpu"), zeroed=True) for _ in range(2)]
        blocks = _make_plan(body, caches[0])
        for pos in range(3):
            got, want = blocks.run(x, pos, pos + 1), body.step_blocks(x, caches[1], pos, pos + 1)
            if not (torch.allclose(got, want, atol=1e-4, rtol=1e-4) and torch.allclose(caches[0].kv, caches[1].kv, atol=1e-5)):
                raise RuntimeError(f"the compiled decode step disagrees with torch's (position {pos})")
