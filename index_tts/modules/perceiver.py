"""PerceiverResampler: a fixed number of learned latents cross-attend to a variable-length context.

UnifiedVoice v2 uses two: 32 speaker latents of width model_dim, and one emotion latent of width
1024. Keys match `perceiver_encoder.*` / `emo_perceiver_encoder.*` in the official `gpt.pth`.

Shapes: B batch, N latents, T context frames, D latent width, C context width, H heads, Dh = 64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class PerceiverConfig:
    dim: int                 # latent width D
    dim_context: int         # context width C (the conformer output_size)
    num_latents: int = 32
    heads: int = 8
    ff_mult: int = 2
    dim_head: int = 64       # fixed upstream
    depth: int = 2           # fixed upstream


class PerceiverAttention(nn.Module):
    """Latents attend to cat[latents, context] (upstream's cross_attn_include_queries=True)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = latents.shape
        kv_in = torch.cat([latents, context], dim=1)                          # [B, N + T, D]
        q = self.to_q(latents).view(b, n, self.heads, -1).transpose(1, 2)     # [B, H, N, Dh]
        k, v = self.to_kv(kv_in).chunk(2, dim=-1)
        k = k.view(b, kv_in.size(1), self.heads, -1).transpose(1, 2)          # [B, H, N + T, Dh]
        v = v.view(b, kv_in.size(1), self.heads, -1).transpose(1, 2)

        sim = (q @ k.transpose(-2, -1)) * self.scale                          # [B, H, N, N + T]
        if mask is not None:
            # Upstream fills with -finfo.max (not -inf), so a masked key still gets exp(-huge) = 0.
            sim = sim.masked_fill(~mask[:, None, None, :], -torch.finfo(sim.dtype).max)
        out = sim.softmax(dim=-1) @ v                                         # [B, H, N, Dh]
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x  # exact (erf) GELU


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """Linear(D -> 2*inner) -> GEGLU -> Linear(inner -> D); keys `.0` and `.2`."""
    inner = int(dim * mult * 2 / 3)
    return nn.Sequential(nn.Linear(dim, inner * 2), GEGLU(), nn.Linear(inner, dim))


class RMSNorm(nn.Module):
    """F.normalize(x) * sqrt(D) * gamma."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class PerceiverResampler(nn.Module):
    def __init__(self, cfg: PerceiverConfig):
        super().__init__()
        self.cfg = cfg
        # Upstream only projects when the widths differ; otherwise there is no key for it.
        self.proj_context = nn.Linear(cfg.dim_context, cfg.dim) if cfg.dim_context != cfg.dim else nn.Identity()
        self.latents = nn.Parameter(torch.randn(cfg.num_latents, cfg.dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(cfg.dim, cfg.heads, cfg.dim_head), feed_forward(cfg.dim, cfg.ff_mult)])
            for _ in range(cfg.depth)
        )
        self.norm = RMSNorm(cfg.dim)

    def forward(self, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """context [B, T, C], mask bool [B, N + T] (True = attend) -> latents [B, N, D]."""
        context = self.proj_context(context)                                   # [B, T, D]
        latents = self.latents.unsqueeze(0).expand(context.size(0), -1, -1)   # [B, N, D]
        for attn, ff in self.layers:
            latents = attn(latents, context, mask) + latents
            latents = ff(latents) + latents
        return self.norm(latents)
