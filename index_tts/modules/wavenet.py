"""WaveNet post-net of the s2mel DiT (upstream `WN` built from encodec-style `SConv1d` layers).

Shapes: B batch, H hidden channels, T frames.
    x [B, H, T], x_mask [B or 1, 1, T], g [B, H, 1] (a time embedding, broadcast over T) -> [B, H, T]

Checkpoint keys (relative to `wavenet.`): `cond_layer.conv.conv.{weight_g,weight_v,bias}`,
`in_layers.{i}.conv.conv.*`, `res_skip_layers.{i}.conv.conv.*`. The double `conv.conv` comes from
upstream's SConv1d -> NormConv1d -> weight-normed Conv1d nesting, kept so the state dict loads as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from index_tts.modules.packed_linear import (bf16_copies, conv_as_product, in_reduced_precision, product_weight,
                                              remember_bf16)
from index_tts.modules.weight_norm import weight_normed


@dataclass(frozen=True)
class WaveNetConfig:
    hidden_dim: int = 512
    num_layers: int = 8
    kernel_size: int = 5
    dilation_rate: int = 1  # layer i uses dilation dilation_rate**i
    gin_channels: int = 512  # width of the conditioning vector g (the DiT passes its hidden width)

    @classmethod
    def from_dict(cls, d: dict, gin_channels: int | None = None) -> "WaveNetConfig":
        return cls(
            hidden_dim=int(d["hidden_dim"]),
            num_layers=int(d["num_layers"]),
            kernel_size=int(d["kernel_size"]),
            dilation_rate=int(d.get("dilation_rate", 1)),
            gin_channels=int(d["hidden_dim"] if gin_channels is None else gin_channels),
        )


def reflect_pad1d(x: Tensor, left: int, right: int) -> Tensor:
    """Reflect padding that also works when T <= the pad width: like encodec's `pad1d`, zeros are
    appended first so the reflection has enough samples, and trimmed off again afterwards."""
    length = x.shape[-1]
    extra = max(left, right) - length + 1 if length <= max(left, right) else 0
    if extra:
        x = F.pad(x, (0, extra))
    padded = F.pad(x, (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - extra]


class NormConv1d(nn.Module):
    """Holds the weight-normed Conv1d; exists only to reproduce the `conv.conv` key path."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.conv = weight_normed(nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation))


class SConv1d(nn.Module):
    """Stride-1, non-causal SConv1d: the Conv1d itself has padding 0 and the input is reflect-padded
    by (effective kernel - 1), with the extra sample on the left for even totals.

    Upstream's WN passes `padding=` to SConv1d, but SConv1d swallows it in **kwargs, so zero padding
    never happens; reflect padding is what the weights were trained with."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.conv = NormConv1d(in_channels, out_channels, kernel_size, dilation)
        total = (kernel_size - 1) * dilation
        self.pad_right = total // 2
        self.pad_left = total - self.pad_right
        # "bf16" (oneDNN's convolution) or "bf16_product" (`conv_as_product`) where that measured
        # faster on this machine (engines/precision.py): then inside `reduced_precision()`
        # (balanced, fast) the convolution multiplies in bf16.
        self.reduced_kernel = "default"
        self._bf16: tuple[Tensor, Tensor | None] | None = None  # made inside `reduced_precision()`, dropped after

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_left or self.pad_right:
            x = reflect_pad1d(x, self.pad_left, self.pad_right)
        conv = self.conv.conv
        bf16 = self.reduced_kernel in ("bf16", "bf16_product") and in_reduced_precision()
        if not bf16 and conv._forward_pre_hooks:  # weight norm not fixed: its hook computes g*v/|v| first
            return conv(x)
        # conv.weight is g*v/|v| as last computed: the CFM fixes it for the whole request.
        if bf16 and self.reduced_kernel == "bf16_product":
            w, b = self._bf16 or remember_bf16(self, (product_weight(conv.weight),
                                                      None if conv.bias is None else conv.bias.detach().bfloat16()))
            return conv_as_product(x.bfloat16(), w, b, conv.kernel_size[0], conv.dilation[0]).float()
        w, b = bf16_copies(self, conv.weight, conv.bias) if bf16 else (conv.weight, conv.bias)
        if x.size(-1) == 1 and w.size(-1) == 1:
            # one frame through a 1x1 convolution (the conditioning layer): a matrix-vector product,
            # which the convolution kernels run several times slower
            y = F.linear(x[..., 0].to(w.dtype), w[..., 0], b)[..., None]
        else:
            y = F.conv1d(x.to(w.dtype), w, b, dilation=conv.dilation)
        return y.float()


class WN(nn.Module):
    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = config
        h = config.hidden_dim
        # One 1x1 conv produces the gate bias of every layer at once: [B, 2*H*num_layers, 1].
        self.cond_layer = SConv1d(config.gin_channels, 2 * h * config.num_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(config.num_layers):
            self.in_layers.append(SConv1d(h, 2 * h, config.kernel_size, dilation=config.dilation_rate**i))
            # The last layer has no residual half: all its channels go to the skip sum.
            res_skip_channels = 2 * h if i < config.num_layers - 1 else h
            self.res_skip_layers.append(SConv1d(h, res_skip_channels, 1))

    @property
    def left_context(self) -> int:
        """How many frames back an output frame depends on: an input cut at frame s (reflect-padded
        there) gives the whole input's outputs from frame s + left_context on."""
        return sum(layer.pad_left for layer in self.in_layers)

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor) -> Tensor:
        h = self.config.hidden_dim
        g = self.cond_layer(g)  # [B, 2*H*L, 1]
        output = torch.zeros_like(x)
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = in_layer(x) + g[:, 2 * h * i : 2 * h * (i + 1)]  # [B, 2H, T]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])  # gated activation, [B, H, T]
            res_skip = res_skip_layer(acts)
            if i < self.config.num_layers - 1:
                x = (x + res_skip[:, :h]) * x_mask
                output = output + res_skip[:, h:]
            else:
                output = output + res_skip
        return output * x_mask
