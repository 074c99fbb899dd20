"""BigVGAN v2 generator (NVIDIA `bigvgan_v2_22khz_80band_256x`): log-mel -> waveform.

conv_pre -> per stage [ConvTranspose1d upsample -> mean of AMP blocks] -> anti-aliased SnakeBeta
-> conv_post -> clamp to [-1, 1].

Checkpoint: `bigvgan_generator.pt` = {"generator": state_dict} in weight-norm form
(`weight_g`/`weight_v`). Like upstream we load it into weight-normed layers and then fold the
norm once (`remove_weight_norm`), so inference runs plain convolutions.

Shapes: mel [B, num_mels, T] -> wav [B, 1, T * prod(upsample_rates)].
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from index_tts.modules.alias_free import Activation1d
from index_tts.modules.weight_norm import weight_normed


@dataclass(frozen=True)
class BigVGANConfig:
    """The generator fields of BigVGAN's `config.json` (training fields are ignored)."""

    num_mels: int = 80
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    # BigVGAN's code defaults both to True when a config omits them; v2 configs set them false.
    use_tanh_at_final: bool = True
    use_bias_at_final: bool = True
    sampling_rate: int = 22050
    hop_size: int = 256

    @classmethod
    def from_dict(cls, d: dict) -> "BigVGANConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if "resblock_dilation_sizes" in kw:
            kw["resblock_dilation_sizes"] = tuple(tuple(d) for d in kw["resblock_dilation_sizes"])
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.resblock != "1":
            raise ValueError(f"BigVGANConfig.resblock={self.resblock!r}: only AMPBlock1 ('1') is implemented")
        if self.activation != "snakebeta":
            raise ValueError(f"BigVGANConfig.activation={self.activation!r}: only 'snakebeta' is implemented")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("BigVGANConfig: upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("BigVGANConfig: resblock_kernel_sizes and resblock_dilation_sizes differ in length")

    @property
    def total_upsample(self) -> int:
        n = 1
        for u in self.upsample_rates:
            n *= u
        return n


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class AMPBlock1(nn.Module):
    """Per dilation d: x += conv2(act(conv1_d(act(x)))); activations alternate a1, a2, a1, ..."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], logscale: bool):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_normed(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_normed(nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1)))
            for _ in dilations
        )
        self.activations = nn.ModuleList(Activation1d(channels, logscale) for _ in range(2 * len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2)):
            xt = conv1(self.activations[2 * i](x))
            xt = conv2(self.activations[2 * i + 1](xt))
            x = x + xt
        return x


class BigVGAN(nn.Module):
    def __init__(self, cfg: BigVGANConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ch = cfg.upsample_initial_channel
        self.conv_pre = weight_normed(nn.Conv1d(cfg.num_mels, ch, 7, padding=3))
        # Each stage is wrapped in a one-element ModuleList to keep the official `ups.{i}.0.` keys.
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            ch_in, ch = ch, ch // 2
            self.ups.append(nn.ModuleList([weight_normed(nn.ConvTranspose1d(ch_in, ch, k, u, padding=(k - u) // 2))]))
            for k_res, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(AMPBlock1(ch, k_res, dilations, cfg.snake_logscale))
        self.activation_post = Activation1d(ch, cfg.snake_logscale)
        self.conv_post = weight_normed(nn.Conv1d(ch, 1, 7, padding=3, bias=cfg.use_bias_at_final))
        self.weight_norm_folded = False

    def remove_weight_norm(self) -> None:
        """Fold g * v / ||v|| into a plain `weight` once (what upstream does after loading)."""
        if self.weight_norm_folded:
            return
        for module in self.modules():
            if hasattr(module, "weight_g"):
                nn.utils.remove_weight_norm(module)
        self.weight_norm_folded = True

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)  # [B, C0, T]
        n_kernels = len(self.cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up[0](x)  # [B, C0 / 2^(i+1), T * prod(rates[:i+1])]
            blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / n_kernels
        x = self.conv_post(self.activation_post(x))  # [B, 1, T * hop]
        if self.cfg.use_tanh_at_final:
            return torch.tanh(x)
        return x.clamp(-1.0, 1.0)

    @classmethod
    def from_checkpoint(cls, cfg: BigVGANConfig, checkpoint: dict) -> "BigVGAN":
        """Build, load `{"generator": sd}` strictly, fold weight norm, eval.

        A state dict already folded (plain `weight` keys) is accepted too, as upstream does.
        """
        if "generator" not in checkpoint:
            raise KeyError(f"BigVGAN checkpoint has no 'generator' entry (top-level keys: {sorted(checkpoint)})")
        sd = checkpoint["generator"]
        model = cls(cfg)
        if not any(k.endswith(".weight_g") for k in sd):
            model.remove_weight_norm()
        model.load_state_dict(sd, strict=True)
        model.remove_weight_norm()
        return model.eval()


def load_bigvgan(directory: str | Path) -> BigVGAN:
    """Load from a directory holding BigVGAN's `config.json` and `bigvgan_generator.pt`."""
    directory = Path(directory)
    cfg = BigVGANConfig.from_dict(json.loads((directory / "config.json").read_text()))
    checkpoint = torch.load(directory / "bigvgan_generator.pt", map_location="cpu", weights_only=True)
    return BigVGAN.from_checkpoint(cfg, checkpoint)
