"""CAM++ speaker encoder (3D-Speaker design), used by IndexTTS2 as the 192-d style vector.

fbank [B, T, F] -> FCM (2-D ResNet head) -> TDNN (stride 2) -> 3 CAM dense blocks with transits
-> BN-ReLU -> mean + unbiased std pooling -> Conv1x1 + non-affine BN -> embedding [B, E].

Keys follow `campplus_cn_common.bin` exactly (937 keys with BatchNorm buffers). The official
file is CAMPPlus(feat_dim=80, embedding_size=192) with the defaults below. Inference only:
BatchNorm always uses its running statistics, so call `.eval()` (the loader does).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FCM_CHANNELS = 32  # hard-coded upstream
BLOCK_LAYERS = (12, 24, 16)
BLOCK_DILATIONS = (1, 2, 2)
CAM_KERNEL = 3
SEGMENT_FRAMES = 100  # CAM context: average over 100-frame segments


@dataclass(frozen=True)
class CAMPPlusConfig:
    feat_dim: int = 80
    embedding_size: int = 192
    growth_rate: int = 32
    bn_size: int = 4
    init_channels: int = 128


def _bn_relu(channels: int) -> nn.Sequential:
    # Named children give the official `*.batchnorm.*` keys.
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU(inplace=False)))


class BasicResBlock(nn.Module):
    """2-D residual block; stride applies to the frequency axis only."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """Front-end: [B, F, T] -> [B, 32 * F/8, T] (frequency downsampled x8 into channels)."""

    def __init__(self, feat_dim: int, channels: int = FCM_CHANNELS):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(BasicResBlock(channels, channels, 2), BasicResBlock(channels, channels, 1))
        self.layer2 = nn.Sequential(BasicResBlock(channels, channels, 2), BasicResBlock(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x[:, None])))  # [B, 32, F, T]
        x = self.layer2(self.layer1(x))  # [B, 32, F/4, T]
        x = F.relu(self.bn2(self.conv2(x)))  # [B, 32, F/8, T]
        b, c, f, t = x.shape
        return x.reshape(b, c * f, t)


class TDNNLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int):
        super().__init__()
        self.linear = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False)
        self.nonlinear = _bn_relu(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Context-aware masking: a local conv gated by global + segment-level context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)

    @staticmethod
    def segment_mean(x: torch.Tensor) -> torch.Tensor:
        # ceil_mode keeps the last partial segment; its mean is over its real frames only.
        seg = F.avg_pool1d(x, SEGMENT_FRAMES, SEGMENT_FRAMES, ceil_mode=True)  # [B, C, ceil(T/100)]
        return seg.repeat_interleave(SEGMENT_FRAMES, dim=-1)[..., : x.shape[-1]]  # [B, C, T]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self.segment_mean(x)
        m = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return y * m


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_ch: int, growth: int, bn_channels: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(in_ch)
        self.linear1 = nn.Conv1d(in_ch, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, growth, CAM_KERNEL, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.Module):
    """Dense block: every layer's `growth` new channels are concatenated onto its input."""

    def __init__(self, num_layers: int, in_ch: int, growth: int, bn_channels: int, dilation: int):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"tdnnd{i + 1}", CAMDenseTDNNLayer(in_ch + i * growth, growth, bn_channels, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)  # [B, C + growth, T]
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.nonlinear = _bn_relu(in_ch)
        self.linear = nn.Conv1d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(-1), x.std(-1, unbiased=True)], dim=-1)  # [B, 2C]


class DenseLayer(nn.Module):
    """Conv1x1 on the pooled vector, then a BatchNorm without affine (only running stats stored)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.linear = nn.Conv1d(in_ch, out_ch, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_ch, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x[..., None])[..., 0])


class CAMPPlus(nn.Module):
    def __init__(self, feat_dim: int = 80, embedding_size: int = 192, growth_rate: int = 32,
                 bn_size: int = 4, init_channels: int = 128):
        super().__init__()
        self.cfg = CAMPPlusConfig(feat_dim, embedding_size, growth_rate, bn_size, init_channels)
        self.head = FCM(feat_dim)
        xvector = OrderedDict(tdnn=TDNNLayer(self.head.out_channels, init_channels, 5, stride=2))
        channels = init_channels
        for i, (n_layers, dilation) in enumerate(zip(BLOCK_LAYERS, BLOCK_DILATIONS), start=1):
            xvector[f"block{i}"] = CAMDenseTDNNBlock(n_layers, channels, growth_rate, bn_size * growth_rate, dilation)
            channels += n_layers * growth_rate
            xvector[f"transit{i}"] = TransitLayer(channels, channels // 2)
            channels //= 2
        xvector["out_nonlinear"] = _bn_relu(channels)
        xvector["stats"] = StatsPool()
        xvector["dense"] = DenseLayer(channels * 2, embedding_size)
        self.xvector = nn.Sequential(xvector)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat [B, T, feat_dim] (mean-removed fbank) -> embedding [B, embedding_size]."""
        x = self.head(feat.transpose(1, 2))  # [B, 32 * F/8, T]
        return self.xvector(x)


def load_campplus(path: str | Path, **config) -> CAMPPlus:
    """Load `campplus_cn_common.bin` (a flat state dict) strictly; eval mode.

    `config` are CAMPPlus constructor kwargs; the official file needs none (feat 80, emb 192)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    model = CAMPPlus(**config)
    model.load_state_dict(sd, strict=True)
    return model.eval()
