"""Anti-aliased SnakeBeta activation of BigVGAN v2 (the one copy in this project).

A periodic nonlinearity applied at the signal's own rate would fold its new high harmonics back
into the band, so BigVGAN runs it at twice the rate: upsample x2 with a windowed-sinc low-pass,
apply SnakeBeta, low-pass and decimate x2.

Both filters are persistent buffers because the official checkpoint stores them
(`*.upsample.filter`, `*.downsample.lowpass.filter`); `kaiser_sinc_filter` rebuilds the same
values for freshly constructed models.

Shapes: x [B, C, T] in, [B, C, T] out (2T inside).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from index_tts.modules import native


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass [1, 1, kernel_size], normalised to unit DC gain.

    `cutoff` and `half_width` are in cycles per sample; the Kaiser beta follows the usual
    attenuation rule for a transition band of width 4*half_width.
    """
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, periodic=False, beta=beta)
    if kernel_size % 2 == 0:  # even length: taps sit half-way between samples
        time = torch.arange(-half, half) + 0.5
    else:
        time = torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    taps = taps / taps.sum()
    return taps.view(1, 1, kernel_size)


class SnakeBeta(nn.Module):
    """x + 1/beta * sin^2(alpha * x), per channel; alpha and beta are stored as logs."""

    def __init__(self, channels: int, logscale: bool = True):
        super().__init__()
        self.logscale = logscale
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]  # [1, C, 1]
        beta = self.beta[None, :, None]
        if self.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


class UpSample1d(nn.Module):
    """x2 interpolation: zero-stuffing transposed conv with the low-pass, gain 2."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1  # input samples of replicate padding per side
        # Output samples produced by that padding (plus the filter's own delay), cropped again.
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(channels, -1, -1), stride=self.ratio, groups=channels)
        return x[..., self.crop_left : x.shape[-1] - self.crop_right]  # [B, C, ratio*T]


class LowPassFilter1d(nn.Module):
    """Replicate-padded depthwise low-pass, optionally strided (decimation)."""

    def __init__(self, stride: int = 2, kernel_size: int = 12, cutoff: float = 0.25, half_width: float = 0.3):
        super().__init__()
        self.stride = stride
        # An even-length filter has no centre tap: one sample less on the left keeps it aligned.
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class DownSample1d(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.lowpass = LowPassFilter1d(ratio, kernel_size, cutoff=0.5 / ratio, half_width=0.6 / ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)  # [B, C, T/ratio]


class Activation1d(nn.Module):
    """Upsample x2 -> SnakeBeta -> downsample x2. Keys: act.{alpha,beta}, upsample.filter,
    downsample.lowpass.filter.

    With `in_one_pass` (our CPU engine sets it where the compiled kernels are available) the three
    run as one pass per channel in `alias_free.c`: the same sums in another order, without the
    torch ops' tensors at twice the signal's length."""

    in_one_pass = False

    def __init__(self, channels: int, logscale: bool = True, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.act = SnakeBeta(channels, logscale)
        self.upsample = UpSample1d(ratio, kernel_size)
        self.downsample = DownSample1d(ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_one_pass and x.dtype == torch.float32 and x.device.type == "cpu" and self._one_pass_shape():
            return self._one_pass(x)
        return self.downsample(self.act(self.upsample(x)))

    def _one_pass_shape(self) -> bool:
        lowpass = self.downsample.lowpass
        return (self.upsample.ratio == 2 and lowpass.stride == 2 and self.upsample.filter.numel() == 12
                and lowpass.filter.numel() == 12 and (lowpass.pad_left, lowpass.pad_right) == (5, 6))

    def _one_pass(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        alpha, beta = self.act.alpha.detach(), self.act.beta.detach()
        if self.act.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        inv_beta = 1.0 / (beta + 1e-9)  # as SnakeBeta computes it
        x = x.contiguous()
        y = torch.empty_like(x)
        up, down = self.upsample.filter.contiguous(), self.downsample.lowpass.filter.contiguous()
        alpha, inv_beta = alpha.repeat(b).contiguous(), inv_beta.repeat(b).contiguous()
        if native.library().alias_free_snake(x.data_ptr(), b * c, t, up.data_ptr(), down.data_ptr(),
                                             alpha.data_ptr(), inv_beta.data_ptr(), y.data_ptr()):
            raise MemoryError("alias_free_snake: no memory for a channel's work buffer")
        return y


def self_check() -> None:
    """Raises unless the compiled one-pass activation computes the torch ops (run once, when the
    library loads)."""
    g = torch.Generator().manual_seed(0)
    for logscale, length in ((True, 1), (True, 7), (False, 40), (True, 300)):
        act = Activation1d(5, logscale)
        with torch.no_grad():
            act.act.alpha.copy_(torch.randn(5, generator=g) * (0.5 if logscale else 1.0) + (0.0 if logscale else 1.0))
            act.act.beta.copy_(torch.randn(5, generator=g) * 0.5 + (0.0 if logscale else 1.5))
            x = torch.randn(2, 5, length, generator=g) * 3
            want = act(x)
            act.in_one_pass = True
            got = act(x)
        if not torch.allclose(got, want, atol=1e-5, rtol=1e-5):
            raise RuntimeError(f"the compiled one-pass activation disagrees with the torch ops (length {length}): "
                               f"{(got - want).abs().max().item():.3g}")
