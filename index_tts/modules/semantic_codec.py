"""MaskGCT semantic codec (Amphion RepCodec), the encoder + quantizer half used by IndexTTS2.

quantize: w2v-BERT features x [B, T, hidden] -> VocosBackbone -> Linear -> factorized VQ
(project to codebook_dim, cosine nearest code, project the raw code back) -> (ids, embeddings).
vq2emb: ids -> embeddings (the GPT's semantic tokens back into the s2mel condition space).

The checkpoint (`semantic_codec/model.safetensors`) also holds a `decoder.*` half that inference
never runs; it is not built and its keys are skipped on purpose (`UNUSED_PREFIXES`). Every other
key is loaded strictly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from index_tts.modules.weight_norm import weight_normed

# Checkpoint entries that exist but play no part in quantize / vq2emb.
UNUSED_PREFIXES = ("decoder.",)


@dataclass(frozen=True)
class SemanticCodecConfig:
    """The `semantic_codec` block of IndexTTS2's config.yaml (defaults = official values)."""

    codebook_size: int = 8192
    hidden_size: int = 1024
    codebook_dim: int = 8
    vocos_dim: int = 384
    vocos_intermediate_dim: int = 2048
    vocos_num_layers: int = 12
    num_quantizers: int = 1
    downsample_scale: int = 1

    @classmethod
    def from_dict(cls, d: dict, downsample_scale: int = 1) -> "SemanticCodecConfig":
        """`downsample_scale`: the one the caller implements (IndexTTS2's codec 1, IndexTTS-2.5's
        codec decoder 2), also the default when the config omits it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"SemanticCodecConfig: unknown fields {unknown}")
        cfg = cls(**{"downsample_scale": downsample_scale, **{k: v for k, v in d.items() if v is not None}})
        if cfg.downsample_scale != downsample_scale:
            raise ValueError(f"semantic_codec.downsample_scale={cfg.downsample_scale}: only {downsample_scale} is implemented")
        return cfg


class ConvNeXtBlock(nn.Module):
    """Depthwise k7 conv -> LayerNorm -> MLP (GELU) -> layer scale `gamma`, residual."""

    def __init__(self, dim: int, intermediate_dim: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # [B, T, D]
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        h = self.gamma * h
        return x + h.transpose(1, 2)  # [B, D, T]


class VocosBackbone(nn.Module):
    """x [B, C_in, T] -> [B, T, dim]."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, intermediate_dim) for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)  # [B, dim, T]
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))  # [B, T, dim]


class FactorizedVectorQuantize(nn.Module):
    """Low-dimensional VQ: hidden -> codebook_dim (weight-normed 1x1), cosine-nearest code,
    codebook_dim -> hidden (weight-normed 1x1). The looked-up row is the raw codebook row."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        if input_dim != codebook_dim:
            self.in_project = weight_normed(nn.Conv1d(input_dim, codebook_dim, 1))
            self.out_project = weight_normed(nn.Conv1d(codebook_dim, input_dim, 1))
        else:
            self.in_project = nn.Identity()
            self.out_project = nn.Identity()
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """z_e [B, d, T] -> ids [B, T]."""
        b = z_e.shape[0]
        enc = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))  # [B*T, d]
        book = F.normalize(self.codebook.weight)  # [K, d]
        # Squared distance of unit vectors (= 2 - 2 cos) written out as upstream does, so that
        # near-ties round the same way.
        dist = enc.pow(2).sum(1, keepdim=True) - 2 * enc @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        return (-dist).max(1).indices.view(b, -1)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, n] -> raw codebook rows [B, d, n]."""
        return self.codebook(ids).transpose(1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, hidden, T] -> (quantized [B, hidden, T], ids [B, T])."""
        z_e = self.in_project(z)  # [B, d, T]
        ids = self.nearest(z_e)
        z_q = self.lookup(ids)
        # Upstream's straight-through estimator is an identity in value but not in fp32 rounding;
        # keep it so the output matches to the last bit.
        z_q = z_e + (z_q - z_e)
        return self.out_project(z_q), ids

    def vq2emb(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, n] -> [B, hidden, n]."""
        return self.out_project(self.lookup(ids))


class ResidualVQ(nn.Module):
    """Holds the quantizers under the official `quantizers.{i}` keys; the official codec has one."""

    def __init__(self, cfg: SemanticCodecConfig):
        super().__init__()
        self.quantizers = nn.ModuleList(
            FactorizedVectorQuantize(cfg.hidden_size, cfg.codebook_size, cfg.codebook_dim)
            for _ in range(cfg.num_quantizers)
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, hidden, T] -> (quantized [B, hidden, T], ids [n_q, B, T])."""
        quantized, residual, all_ids = 0.0, z, []
        for quantizer in self.quantizers:
            z_q, ids = quantizer(residual)
            quantized = quantized + z_q
            residual = residual - z_q
            all_ids.append(ids)
        return quantized, torch.stack(all_ids)

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n_q, n] -> summed embeddings [B, hidden, n].

        Upstream indexes the quantizer on dim 0 (its layout is [n_q, B, n]) while IndexTTS2
        passes codes.unsqueeze(1) = [1, 1, n]; at batch 1 with one quantizer both read the same
        ids. We take the documented [B, n_q, n] layout so that batches work too."""
        out = 0.0
        for q, quantizer in enumerate(self.quantizers[: codes.shape[1]]):
            out = out + quantizer.vq2emb(codes[:, q])
        return out


class RepCodec(nn.Module):
    def __init__(self, cfg: SemanticCodecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(
            VocosBackbone(cfg.hidden_size, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers),
            nn.Linear(cfg.vocos_dim, cfg.hidden_size),
        )
        self.quantizer = ResidualVQ(cfg)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, hidden] -> (indices [B, T] int64 (or [n_q, B, T] when n_q > 1),
        quantized [B, T, hidden])."""
        z = self.encoder(x.transpose(1, 2)).transpose(1, 2)  # [B, hidden, T]
        quantized, ids = self.quantizer(z)
        if ids.shape[0] == 1:
            ids = ids[0]
        return ids, quantized.transpose(1, 2)

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n_q, n] -> [B, hidden, n]."""
        return self.quantizer.vq2emb(codes)


def load_semantic_codec(path: str | Path, cfg: SemanticCodecConfig | None = None) -> RepCodec:
    """Load the codec's `model.safetensors`. Skips `UNUSED_PREFIXES`; any other missing or
    unexpected key is an error that names it."""
    from safetensors.torch import load_file

    cfg = cfg or SemanticCodecConfig()
    sd = {k: v for k, v in load_file(str(path)).items() if not k.startswith(UNUSED_PREFIXES)}
    return load_exactly(RepCodec(cfg), sd, f"semantic codec checkpoint {path}")


def load_exactly(model: nn.Module, sd: dict, what: str) -> nn.Module:
    """Load `sd` into `model` (eval mode) when keys and shapes match exactly; otherwise raise,
    naming every missing, unexpected or misshapen key."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise KeyError(f"{what}: missing keys {missing}, unexpected keys {unexpected}")
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items() if sd[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{what}: shape mismatch: {wrong}")
    model.load_state_dict(sd, strict=True)
    return model.eval()
