"""s2mel length regulator (upstream `InterpolateRegulator`, continuous-input branch).

Stretches 50 Hz semantic features to the mel frame rate (22050/256 ≈ 86.13 Hz) by nearest-neighbour
resampling in time, then smooths them with a small conv stack.

Shapes: B batch, T_in input frames, T_out = max(ylens) output frames, C `channels`.
    x [B, T_in, in_channels] -> out [B, T_out, C]

Checkpoint keys (relative to `length_regulator.`): `content_in_proj.*`, `model.{i}.*`.
Upstream also stores `embedding.weight` (discrete-token table) and `mask_token`; inference with
continuous input never reads them, so they are not built (see KNOWN_UNUSED_KEYS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# Present in the official s2mel.pth, never used by continuous-input inference; skipped on load.
KNOWN_UNUSED_KEYS = ("embedding.weight", "mask_token")


@dataclass(frozen=True)
class LengthRegulatorConfig:
    channels: int = 512  # output width, also the conv width
    in_channels: int = 1024  # width of the semantic features fed in
    sampling_ratios: tuple[int, ...] = (1, 1, 1, 1)  # only the count matters: one conv block each
    groups: int = 1  # GroupNorm groups (upstream always builds 1)

    @classmethod
    def from_dict(cls, d: dict) -> "LengthRegulatorConfig":
        if d.get("is_discrete", False):
            raise NotImplementedError("length_regulator.is_discrete=True is not supported (IndexTTS2 uses continuous input)")
        if d.get("vector_quantize", False):
            raise NotImplementedError("length_regulator.vector_quantize=True is not supported")
        if d.get("f0_condition", False):
            raise NotImplementedError("length_regulator.f0_condition=True is not supported")
        if int(d.get("n_codebooks", 1)) != 1:
            raise NotImplementedError("length_regulator.n_codebooks != 1 is not supported")
        if not d.get("sampling_ratios"):
            raise NotImplementedError("length_regulator.sampling_ratios must be non-empty (no-resampling branch unsupported)")
        return cls(
            channels=int(d["channels"]),
            in_channels=int(d["in_channels"]),
            sampling_ratios=tuple(int(r) for r in d.get("sampling_ratios", (1, 1, 1, 1))),
        )


def sequence_mask(lengths: Tensor, max_length: int | None = None) -> Tensor:
    """lengths [B] -> bool [B, max_length], True on valid frames."""
    if max_length is None:
        max_length = int(lengths.max())
    positions = torch.arange(max_length, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def nearest_source_index(in_len: int, out_len: int, device=None) -> Tensor:
    """Source frame for every output frame, exactly as PyTorch's `F.interpolate(mode="nearest")`
    picks it for float32 input: src = min(floor(float32(i) * float32(in_len / out_len)), in_len - 1).

    The float32 scale is not exact integer arithmetic (e.g. 30 -> 86 differs at frame 43), and
    PyTorch switches to a double scale for float64 tensors, so the rule is spelled out here to keep
    the result independent of the tensor dtype.
    """
    if out_len == in_len:
        return torch.arange(out_len, device=device)
    scale = torch.tensor(in_len, dtype=torch.float32) / out_len  # fp32 division, as in ATen
    src = torch.floor(torch.arange(out_len, dtype=torch.float32, device=device) * scale.to(device))
    return src.long().clamp_(max=in_len - 1)


class InterpolateRegulator(nn.Module):
    def __init__(self, config: LengthRegulatorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        layers: list[nn.Module] = []
        for _ in config.sampling_ratios:
            layers += [nn.Conv1d(c, c, 3, 1, 1), nn.GroupNorm(config.groups, c), nn.Mish()]
        layers.append(nn.Conv1d(c, c, 1, 1))
        self.model = nn.Sequential(*layers)
        self.content_in_proj = nn.Linear(config.in_channels, c)

    def forward(self, x: Tensor, ylens: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, T_in, in_channels], ylens [B] target frame counts -> (out [B, T_out, C], ylens)."""
        x = self.content_in_proj(x)  # [B, T_in, C]
        out_len = int(ylens.max())
        x = x[:, nearest_source_index(x.shape[1], out_len, device=x.device)]  # [B, T_out, C]
        mask = sequence_mask(ylens, x.shape[1]).unsqueeze(-1)  # [B, T_out, 1]
        out = self.model(x.transpose(1, 2)).transpose(1, 2)  # conv stack runs on [B, C, T_out]
        return out * mask, ylens

