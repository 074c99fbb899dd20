"""EnhancedCodec decoder of IndexTTS-2.5 (`codec.pth`, spec-2.5 §4.2): GPT semantic codes at 25 Hz
-> the 50 Hz, 1024-wide features the s2mel length regulator takes (`S_infer`).

decode(codes [1, n]):
    raw codebook rows -> out_project (weight-normed 1x1)      [1, hidden, n]
    decoder: VocosBackbone + Linear(vocos_dim -> hidden)      [1, n, hidden]
    nearest x2 upsampling along time (frame i -> 2i, 2i+1)    [1, hidden, 2n]
    `up` Conv1d(hidden, hidden, k3, pad 1), transposed        [1, 2n, hidden]

The quantizer and Vocos backbone are the MaskGCT ones of the v2 codec (`semantic_codec.py`),
reused. The file also holds the encoder half (`encoder.*`, `down.*`), which only training runs: it
is not built and its keys are skipped on purpose (`UNUSED_PREFIXES`); every other key loads
strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from index_tts.modules.semantic_codec import ResidualVQ, SemanticCodecConfig, VocosBackbone, load_exactly

UNUSED_PREFIXES = ("encoder.", "down.")
UPSAMPLE = 2  # downsample_scale: 25 Hz codes back to the 50 Hz feature rate


class CodecDecoder25(nn.Module):
    """Keys as in `codec.pth`'s `model` dict: `up.*`, `decoder.{0,1}.*`, `quantizer.quantizers.*`."""

    def __init__(self, cfg: SemanticCodecConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        self.up = nn.Conv1d(h, h, 3, padding=1)
        self.decoder = nn.Sequential(
            VocosBackbone(h, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers),
            nn.Linear(cfg.vocos_dim, h),
        )
        self.quantizer = ResidualVQ(cfg)

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n] -> [B, hidden, n]."""
        return self.quantizer.vq2emb(codes.unsqueeze(1))

    def decode_steps(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage of `decode`, named as the fixtures name them."""
        emb = self.vq2emb(codes)                                          # [B, h, n]
        decoded = self.decoder(emb)                                       # [B, n, h]
        upsampled = F.interpolate(decoded.transpose(1, 2), scale_factor=UPSAMPLE, mode="nearest")  # [B, h, 2n]
        s_infer = self.up(upsampled).transpose(1, 2)                      # [B, 2n, h]
        return {"vq2emb": emb, "decoder_out": decoded, "upsampled": upsampled, "S_infer": s_infer}

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n] -> S_infer [B, 2n, hidden]."""
        return self.decode_steps(codes)["S_infer"]


def codec25_config(d: dict) -> SemanticCodecConfig:
    """The `semantic_codec` block of the 2.5 config.yaml (EnhancedCodec's constructor names)."""
    return SemanticCodecConfig.from_dict(d, downsample_scale=UPSAMPLE)


def load_codec25(path_or_state_dict, cfg: SemanticCodecConfig | None = None) -> CodecDecoder25:
    """Load `codec.pth` (`{'model': sd}`, or the bare sd). Skips UNUSED_PREFIXES; any other missing
    or unexpected key, or a wrong shape, is an error that names it."""
    cfg = cfg or SemanticCodecConfig(downsample_scale=UPSAMPLE)
    sd = path_or_state_dict
    if isinstance(sd, (str, Path)):
        sd = torch.load(sd, map_location="cpu", weights_only=True, mmap=True)
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    sd = {k: v for k, v in sd.items() if not k.startswith(UNUSED_PREFIXES)}
    return load_exactly(CodecDecoder25(cfg), sd, "2.5 codec checkpoint")
