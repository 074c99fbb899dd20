"""Linear layers that multiply through oneDNN with pre-packed weights (CPU, float32 inference).

Why: on this project's CPUs, torch's default fp32 `addmm`/`linear` goes to MKL, which is several
times slower than oneDNN on AMD, above all for the few-row products of GPT decoding (3 beams ->
3 rows). Measured on the dev VM (AMD Zen 5, 2 threads): GPT-sized weights at 3 rows, MKL 239 ms
vs oneDNN packed 47 ms per 24 layers; DiT-sized products (1204 x 512 x 1536) 210 vs 490 GFLOP/s.
See docs/performance.md.

`pack_linears(model)` swaps every plain `nn.Linear` and every module that says it is a linear
layer with its weight stored [in, out] (`weight_in_out = True`, the GPT-2 `Conv1D`) for a
`PackedLinear` that keeps the *same* `weight`/`bias` parameters (so `state_dict()` keys, shapes
and values do not change) plus a packed copy in a non-persistent buffer. The result equals the
plain layer up to float32 summation order (max error ~1e-6 relative).

Pack only after the weights are final (after `load_state_dict`, `.to(device)`, `.eval()`):
the packed copy does not follow later changes to `weight`.
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_plain = threading.local()  # set by `unpacked()`: multiply with the original weights instead


def onednn_packing_available() -> bool:
    """oneDNN and the (internal, inductor-used) packed-linear ops exist in this torch build."""
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    return hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise")


class PackedLinear(nn.Module):
    """y = x W^T + b through oneDNN, W packed once. x [..., in] -> [..., out]."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, weight_in_out: bool):
        super().__init__()
        self.weight = weight  # the original parameter, in its original layout (checkpoint key)
        self.bias = bias
        self.weight_in_out = weight_in_out
        w_out_in = weight.detach().t() if weight_in_out else weight.detach()
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(w_out_in.contiguous()), persistent=False)
        self.out_features = w_out_in.size(0)

    def forward(self, x: Tensor) -> Tensor:
        if getattr(_plain, "on", False):
            w = self.weight.t() if self.weight_in_out else self.weight
            return F.linear(x, w, self.bias)
        rows = x.reshape(-1, x.size(-1))
        bias = None if self.bias is None else self.bias.detach()
        y = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, bias, "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)


def _packable(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, nn.Parameter) or weight.dtype != torch.float32 or weight.device.type != "cpu":
        return False
    if getattr(module, "parametrizations", None):  # weight-normed layers recompute their weight
        return False
    return type(module) is nn.Linear or getattr(module, "weight_in_out", False)


def pack_linears(model: nn.Module) -> int:
    """Replace the packable linear layers of `model` in place; returns how many were packed.

    A no-op (0) where oneDNN packing is unavailable, or for non-CPU / non-float32 weights.
    Packed layers are inference-only: they do not propagate gradients to `weight`.
    """
    if not onednn_packing_available():
        return 0
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _packable(child):
                setattr(parent, name, PackedLinear(child.weight, child.bias, getattr(child, "weight_in_out", False)))
                count += 1
    return count


@contextlib.contextmanager
def unpacked():
    """Within this block (this thread only), packed layers multiply with their original weights
    through torch's default kernels, as an unpacked model would. Used by the benchmark's
    original-style path, so both paths run in one process on one set of weights."""
    before = getattr(_plain, "on", False)
    _plain.on = True
    try:
        yield
    finally:
        _plain.on = before
