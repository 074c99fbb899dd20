"""Linear and convolution layers that run the kernel chosen for this machine (CPU inference).

`apply_kernels(model, table, rows, reduced_ok)` swaps every plain `nn.Linear` and every module that
says it is a linear layer with its weight stored [in, out] (`weight_in_out = True`, the GPT-2
`Conv1D`) for a `KernelLinear` that holds its weight ONCE, in the form its fp32 kernel reads:
- "default": the original parameter, multiplied by torch's `F.linear` (MKL on x86);
- "onednn": only a oneDNN-packed copy (the original is dropped, so no second copy stays resident);
- "onednn4": the same, fewer than 4 rows padded to 4 per call;
- "panel": only the 64-column panels our own few-row kernel streams (`panel_linear`);
- "onednn_dense": the original parameter, read in place by oneDNN (for weights that must stay
  views of their file: the voice front end).
`state_dict()` keys, shapes and values do not change (a packed weight is unpacked on saving).
Results equal the plain layer up to float32 summation order (~1e-6 relative).

Layers of modules that may run in reduced precision (`reduced_ok`: the DiT and BigVGAN, and the
GPT with its voice front end and w2v-BERT, which only the fast mode runs reduced) also get a
reduced-precision choice: inside `reduced_precision()` they use bf16 weights ("bf16": oneDNN with
bf16 inputs; "panel_bf16": the panel kernel, fp32 inputs) when that was measured fastest, with a
bf16 copy built on first use (so exact-only use never holds one), or, for weights that stay in
their file, a cast made for each call ("bf16_cast"). Convolutions only ever get that reduced choice: their fp32 path is torch's.

Which kernel wins is measured per machine (`kernels.KernelTable`). Apply only after the weights
are final (after `load_state_dict`, `.to(device)`, `.eval()`).
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from index_tts.modules import huge_pages, native, panel_linear
from index_tts.modules.kernels import PANEL_MAX_ROWS, REDUCED, KernelTable, native_bf16, onednn_packing_available, padded_rows

_mode = threading.local()  # .reduced: inside `reduced_precision()` on this thread
_holding_bf16: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()  # layers holding a bf16 copy now
_active = 0  # reduced_precision blocks open, all threads
_active_lock = threading.Lock()


@contextlib.contextmanager
def reduced_precision():
    """Within this block (this thread), layers with a bf16 reduced choice compute in bf16.

    Their bf16 copies are made on first use inside the block and dropped when the last open block
    ends, so they never sit in memory beside the fp32 weights between requests; except the layers
    of a model given to `keep_bf16_copies`, whose copies stay once made."""
    global _active
    before = getattr(_mode, "reduced", False)
    _mode.reduced = True
    with _active_lock:
        _active += 1
    try:
        yield
    finally:
        _mode.reduced = before
        with _active_lock:
            _active -= 1
            if _active == 0 and _holding_bf16:
                for layer in list(_holding_bf16):
                    layer._bf16 = None
                _holding_bf16.clear()
                # glibc would keep the freed copies (~1 GB for the fast mode's GPT) in its heap,
                # and the next request's peak would come on top of them
                huge_pages.return_freed_memory()


def keep_bf16_copies(model: nn.Module) -> None:
    """The bf16 copies of `model`'s layers stay once made (the DiT's and BigVGAN's, 0.3 GiB at the
    official size: re-making them took ~0.4 s of each balanced request on an Intel Xeon), where
    other layers' are dropped after each `reduced_precision()` block (the fast mode's GPT: 1 GiB)."""
    for layer in model.modules():
        if hasattr(layer, "_bf16"):
            layer.bf16_kept = True


def remember_bf16(layer: nn.Module, weights: tuple) -> tuple:
    with _active_lock:
        layer._bf16 = weights
        if not getattr(layer, "bf16_kept", False):
            _holding_bf16.add(layer)
    return weights


def bf16_copies(layer: nn.Module, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """`layer`'s bf16 (weight, bias): made on first use inside `reduced_precision()` (and dropped
    after, unless `keep_bf16_copies`)."""
    return layer._bf16 or remember_bf16(layer, (weight.detach().bfloat16(), None if bias is None else bias.detach().bfloat16()))


def product_weight(weight: Tensor) -> Tensor:
    """A Conv1d weight [out, in, k] as the packed bf16 [out, in * k] that `conv_as_product` multiplies."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().bfloat16().reshape(weight.size(0), -1).contiguous())


def conv_as_product(x: Tensor, weight: Tensor, bias: Tensor | None, kernel_size: int, dilation: int) -> Tensor:
    """F.conv1d with stride 1, no groups and no padding, as one bf16 product: every output frame's
    k (dilated) input frames as one row. x [B, C, T] bf16, weight from `product_weight`, bias bf16
    -> [B, out, T - (k - 1) * dilation] bf16 (a transposed view of the [B, T', out] product).

    oneDNN's bf16 convolution ran the DiT's WaveNet layers (k = 5, 512 -> 1024 over 2 x 192 frames)
    at 5.2 ms on an Intel Xeon with AMX; this copy and product at 3.3 (measured per machine, as
    the "bf16_product" candidate)."""
    B, C, _ = x.shape
    taps = x.unfold(2, (kernel_size - 1) * dilation + 1, 1)[..., ::dilation]  # [B, C, T', k]
    frames = taps.size(2)
    rows = taps.permute(0, 2, 1, 3).reshape(B * frames, C * kernel_size)  # [B * T', C * k], one copy
    y = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")  # [B * T', out]
    return y.view(B, frames, -1).transpose(1, 2)


def in_reduced_precision() -> bool:
    """Inside `reduced_precision()` on this thread (the balanced and fast modes' DiT and BigVGAN)."""
    return getattr(_mode, "reduced", False)


class KernelLinear(nn.Module):
    """y = x W^T + b with the chosen kernel. x [..., in] -> [..., out]."""

    def __init__(self, weight: Tensor, bias: Tensor | None, weight_in_out: bool, kernel: str, reduced_kernel: str):
        super().__init__()
        w_out_in = weight.detach().t() if weight_in_out else weight.detach()
        self.in_features, self.out_features = w_out_in.size(1), w_out_in.size(0)
        self.weight_in_out, self.kernel, self.reduced_kernel = weight_in_out, kernel, reduced_kernel
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.weight = None
        if kernel in ("onednn", "onednn4"):
            self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(w_out_in.contiguous()), persistent=False)
            self.panels = None
        elif kernel == "panel":
            self.register_buffer("panels", panel_linear.pack(w_out_in), persistent=False)
            self.packed_weight = None
        else:
            self.weight = nn.Parameter(weight.detach(), requires_grad=False)  # original layout
            self.packed_weight = self.panels = None
        self._bf16: tuple[Tensor, Tensor | None] | None = None

    def dense_weight(self) -> Tensor:
        """W [out, in] as a plain tensor (unpacked when packed)."""
        if self.packed_weight is not None:
            return self.packed_weight.to_dense()
        if self.panels is not None:
            return panel_linear.unpack(self.panels, self.out_features)
        return self.weight.t() if self.weight_in_out else self.weight

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        w = self.dense_weight()
        destination[prefix + "weight"] = (w.t() if self.weight_in_out else w).contiguous()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias.detach()

    def _bf16_weights(self) -> tuple[Tensor, Tensor | None]:
        if self._bf16 is not None:
            return self._bf16
        if self.reduced_kernel == "panel_bf16":  # the same panels, rounded: one cast
            panels = (panel_linear.pack(self.dense_weight(), torch.bfloat16) if self.panels is None
                      else panel_linear.to_bf16(self.panels))
            return remember_bf16(self, (panels, None))
        w = torch.ops.mkldnn._reorder_linear_weight(self.dense_weight().bfloat16().contiguous())
        return remember_bf16(self, (w, None if self.bias is None else self.bias.detach().bfloat16()))

    def bf16_product(self, rows: Tensor) -> Tensor:
        """rows [n, in] (any float dtype) times the bf16 weight -> [n, out] in bf16: the held copy
        ("bf16"), or one cast for this call only ("bf16_cast": the weight stays in its file)."""
        if self.reduced_kernel == "bf16_cast":
            w, b = self.dense_weight().bfloat16(), None if self.bias is None else self.bias.detach().bfloat16()
        else:
            w, b = self._bf16_weights()
        return torch.ops.mkldnn._linear_pointwise(rows.to(torch.bfloat16), w, b, "none", [], "")

    def panels_now(self) -> Tensor | None:
        """The panels this layer's forward streams now (bf16 inside `reduced_precision()` when
        that is its reduced choice), or None when it does not run the panel kernel."""
        if in_reduced_precision() and self.reduced_kernel in REDUCED:
            return self._bf16_weights()[0] if self.reduced_kernel == "panel_bf16" else None
        return self.panels

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.size(-1))
        bias = None if self.bias is None else self.bias.detach()
        panels = self.panels_now()
        if panels is not None:
            y = panel_linear.linear(rows, panels, bias, self.out_features)
        elif self.reduced_kernel in ("bf16", "bf16_cast") and in_reduced_precision():
            y = self.bf16_product(rows).float()
        elif self.packed_weight is not None:
            n = rows.size(0)
            if self.kernel == "onednn4" and n < 4:
                y = torch.ops.mkldnn._linear_pointwise(padded_rows(rows), self.packed_weight, bias, "none", [], "")[:n]
            else:
                y = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, bias, "none", [], "")
        elif self.kernel == "onednn_dense":  # oneDNN reading the weight where it lies (reordered per call)
            y = torch.ops.mkldnn._linear_pointwise(rows, self.dense_weight(), bias, "none", [], "")
        elif self.weight_in_out:
            y = rows @ self.weight if self.bias is None else torch.addmm(self.bias, rows, self.weight)
        else:
            y = F.linear(rows, self.weight, self.bias)
        return y.view(*x.shape[:-1], self.out_features)


PackedLinear = KernelLinear  # the name other modules and tests know


class Bf16Conv(nn.Module):
    """A Conv1d/ConvTranspose1d (same parameters, same keys) that runs in bf16 inside
    `reduced_precision()` and as itself outside."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        self.options = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
        if self.transposed:
            self.options["output_padding"] = conv.output_padding
        self._bf16: tuple[Tensor, Tensor | None] | None = None

    def forward(self, x: Tensor) -> Tensor:
        conv = F.conv_transpose1d if self.transposed else F.conv1d
        if not in_reduced_precision():
            return conv(x, self.weight, self.bias, **self.options)
        w, b = bf16_copies(self, self.weight, self.bias)
        return conv(x.bfloat16(), w, b, **self.options).float()


def _linear_like(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, nn.Parameter) or weight.dtype != torch.float32 or weight.device.type != "cpu":
        return False
    if getattr(module, "parametrizations", None):  # weight-normed layers recompute their weight
        return False
    return type(module) is nn.Linear or (getattr(module, "weight_in_out", False) and not isinstance(module, KernelLinear))


def _plain_conv(module: nn.Module) -> bool:
    return (type(module) in (nn.Conv1d, nn.ConvTranspose1d) and not getattr(module, "parametrizations", None)
            and module.weight.dtype == torch.float32 and module.weight.device.type == "cpu"
            and isinstance(module.padding, tuple))


def _conv_signature(c: nn.Module) -> dict:
    return {"in": c.in_channels, "out": c.out_channels, "k": c.kernel_size[0], "stride": c.stride[0],
            "padding": c.padding[0], "dilation": c.dilation[0], "groups": c.groups,
            "transposed": isinstance(c, nn.ConvTranspose1d)}


def linear_candidates(n_rows: int, reduced_ok: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fp32 candidates, reduced-only candidates) this machine offers a linear layer of `n_rows` rows
    whose weight may be copied out of its file."""
    onednn = onednn_packing_available()
    few_rows = native.available() and n_rows < PANEL_MAX_ROWS
    fp32 = (("default", "onednn") if onednn else ("default",)) + (("onednn4",) if onednn and n_rows < 4 else ())
    fp32 += ("panel",) if few_rows else ()
    if not reduced_ok:
        return fp32, ()
    return fp32, (("bf16",) if onednn and native_bf16() else ()) + (("panel_bf16",) if few_rows else ())


def apply_kernels(model: nn.Module, table: KernelTable, rows: int | dict[str, int], reduced_ok: bool = False,
                  conv_lengths: dict[int, int] | None = None, in_place: tuple[str, ...] = (),
                  panels: tuple[str, ...] = (), reduced_panels: tuple[str, ...] = ()) -> dict[str, int]:
    """Give every linear layer of `model` its measured fastest kernel, in place.

    rows: the typical number of rows the layers multiply (3 for the GPT's beam decode), or
    {submodule name prefix: rows} with "" as the fallback. conv_lengths: {id(conv): input length}
    for the convolutions that may run in bf16 (reduced_ok only). in_place: names of submodules
    ("" for all) whose weights must stay where they are (views of the memory-mapped checkpoint):
    their layers choose only among kernels that read the weight in place ("default", "onednn_dense";
    reduced: "bf16_cast").
    panels, reduced_panels: names of submodules whose layers run on the panel kernel ("panel",
    "panel_bf16" inside `reduced_precision()`) whatever their own times say (the C decode step
    needs all of a block's layers on panels; `precision._decode_step_kernels` measures when).
    Returns {kernel: layer count}.
    """
    onednn = onednn_packing_available()
    bf16 = reduced_ok and onednn and native_bf16()
    fp32_in_place = ("default", "onednn_dense") if onednn else ("default",)
    counts: dict[str, int] = {}
    names = {id(m): n for n, m in model.named_modules()}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            full = f"{names[id(parent)]}.{name}".lstrip(".")
            if _linear_like(child):
                n_rows = rows if isinstance(rows, int) else _rows_for(full, rows)
                w, w_in_out = child.weight, getattr(child, "weight_in_out", False)
                n_in, n_out = (w.shape if w_in_out else w.shape[::-1])
                if _under(full, in_place):
                    reduced_kernel = table.linear(n_in, n_out, n_rows, fp32_in_place + (("bf16_cast",) if bf16 else ()))
                    kernel = table.linear(n_in, n_out, n_rows, fp32_in_place)  # the same timings
                else:
                    allowed, reduced = linear_candidates(n_rows, reduced_ok)
                    kernel = ("panel" if _under(full, panels) and "panel" in allowed
                              else table.linear(n_in, n_out, n_rows, allowed))
                    if not reduced_ok:
                        reduced_kernel = kernel
                    elif _under(full, reduced_panels) and "panel_bf16" in reduced:
                        reduced_kernel = "panel_bf16"
                    else:
                        reduced_kernel = table.linear(n_in, n_out, n_rows, allowed + reduced)
                setattr(parent, name, KernelLinear(w, child.bias, w_in_out, kernel, reduced_kernel))
                counts[kernel] = counts.get(kernel, 0) + 1
                if reduced_kernel in REDUCED:
                    counts[f"{reduced_kernel} (reduced modes)"] = counts.get(f"{reduced_kernel} (reduced modes)", 0) + 1
            elif _under(full, in_place):
                continue
            elif conv_lengths and id(child) in conv_lengths and _plain_conv(child) and bf16:
                if table.conv(_conv_signature(child), conv_lengths[id(child)], ("default", "bf16")) == "bf16":
                    setattr(parent, name, Bf16Conv(child))
                    counts["bf16 conv (reduced modes)"] = counts.get("bf16 conv (reduced modes)", 0) + 1
    table.save()
    return counts


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    """`name` is the submodule `p` or inside it, for some p in prefixes ("" is the whole model)."""
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


def _rows_for(name: str, rows: dict[str, int]) -> int:
    best = max((p for p in rows if name.startswith(p)), key=len, default="")
    return rows.get(best, rows.get("", 64))


def conv_input_lengths(model: nn.Module, example: Tensor) -> dict[int, int]:
    """{id(conv): input length} of every plain convolution when `model(example)` runs."""
    seen: dict[int, int] = {}

    def record(module, args) -> None:  # a pre-hook's return value would replace the input
        seen.setdefault(id(module), args[0].size(-1))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if _plain_conv(m)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return seen


def pack_linears(model: nn.Module) -> int:
    """Every packable linear layer of `model` to the oneDNN-packed kernel; returns how many.

    A no-op (0) where oneDNN packing is unavailable, or for non-CPU / non-float32 weights."""
    if not onednn_packing_available():
        return 0
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _linear_like(child):
                w_in_out = getattr(child, "weight_in_out", False)
                setattr(parent, name, KernelLinear(child.weight, child.bias, w_in_out, "onednn", "onednn"))
                count += 1
    return count


def detach_from_file(model: nn.Module, skip: tuple[str, ...] = ()) -> None:
    """Copy every parameter and buffer into this process's own memory (except under the
    submodules named in `skip`, which stay views of their file).

    Checkpoints are loaded memory-mapped; a tensor still viewing the file keeps the mapping (and
    every page of it ever read) resident beside the packed copies. After this the mapping is
    released once the loader's references go, and each weight is held exactly once."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if _under(name, skip):
                continue
            for name, p in list(module._parameters.items()):
                if p is not None and p.device.type == "cpu":
                    module._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=False)
            if isinstance(module, KernelLinear):
                continue  # its buffers are packed copies it made, never views of a file
            for name, b in list(module._buffers.items()):
                if b is not None and b.device.type == "cpu" and b.layout == torch.strided:
                    module._buffers[name] = b.clone()


def takes_bf16(layer: nn.Module) -> bool:
    """Whether `layer` multiplies in bf16 now: a `KernelLinear` on the bf16 kernel, inside
    `reduced_precision()` (its input may then be rounded to bf16 by whatever makes it)."""
    return isinstance(layer, KernelLinear) and layer.reduced_kernel == "bf16" and in_reduced_precision()


def linear_keeping_bf16(layer: nn.Module, x: Tensor) -> Tensor:
    """`layer(x)`, except that where `takes_bf16(layer)` it takes a bf16 `x` as is and returns its
    bf16 product without the cast back to fp32, for a chain of ops that all take bf16 (the DiT's
    attention and feed-forward). Otherwise exactly `layer(x)` (a bf16 `x` is cast to fp32 first)."""
    if takes_bf16(layer):
        return layer.bf16_product(x.reshape(-1, x.size(-1))).view(*x.shape[:-1], layer.out_features)
    return layer(x.float() if x.dtype == torch.bfloat16 else x)
