"""Conformer conditioning encoder of UnifiedVoice v2 (speaker and emotion paths).

A WeNet-style Conformer: Conv2dSubsampling2 front end, relative-position self-attention with
`rel_shift` disabled, a depthwise-conv module and a SiLU feed-forward, all pre-norm.
Parameter names equal the official `gpt.pth` keys under `conditioning_encoder.` /
`emo_conditioning_encoder.`.

Shapes: B batch, T input frames (50 Hz w2v-BERT), T' = (T - 1) // 2 frames after subsampling,
D = output_size, H heads, Dk = D // H.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ConformerConfig:
    """The `condition_module` / `emo_condition_module` blocks of config.yaml."""

    output_size: int = 512
    linear_units: int = 2048
    attention_heads: int = 8
    num_blocks: int = 6
    input_layer: str = "conv2d2"
    perceiver_mult: int = 2    # read by the perceiver that follows, kept here as in the yaml
    # Fixed by upstream whatever the yaml says:
    input_size: int = 1024     # w2v-BERT width
    cnn_module_kernel: int = 15
    pe_max_len: int = 5000     # rows of the persistent `pe` buffer

    @classmethod
    def from_dict(cls, d: dict) -> "ConformerConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown conformer config keys: {sorted(unknown)}")
        cfg = cls(**d)
        if cfg.input_layer != "conv2d2":
            raise ValueError(f"conformer input_layer {cfg.input_layer!r} is not supported (only 'conv2d2')")
        if cfg.output_size % cfg.attention_heads:
            raise ValueError("conformer output_size must be divisible by attention_heads")
        return cfg


def valid_frames_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] lengths -> bool [B, 1, max_len], True where frame t < length (upstream ~make_pad_mask).

    Upstream passes the feature dim (1024) as the length, so every frame is valid while T <= 1024.
    """
    t = torch.arange(max_len, device=lengths.device)
    return (t[None, :] < lengths[:, None]).unsqueeze(1)


def sinusoid_table(max_len: int, d_model: int) -> torch.Tensor:
    """pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...). Shape [1, max_len, d]."""
    position = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0)


class RelPositionalEncoding(nn.Module):
    """Scales x by sqrt(D) and returns the absolute sinusoid rows for the attention's pos term."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.xscale = math.sqrt(d_model)
        # Persistent: the official checkpoint stores it, and we read it from there.
        self.register_buffer("pe", sinusoid_table(max_len, d_model))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.size(1) >= self.pe.size(1):
            raise ValueError(f"conformer input too long: {x.size(1)} frames after subsampling, table has {self.pe.size(1)}")
        return x * self.xscale, self.pe[:, : x.size(1)]


class Conv2dSubsampling2(nn.Module):
    """Conv2d(1->D, 3x3, stride 2) + ReLU over (time, feature), then Linear(D * F' -> D).

    At full size F' = 511, so `out.0` is the 261,632 -> 512 linear, and the convolution's output
    is 130 MB for 5 s of speech. With `conv_as_product` (set by the CPU kernel choice) the
    convolution runs as one batched product over the 9 taps (+ bias) that writes that output
    straight in the linear's (time, channel, feature) order: no Conv2d over a single input
    channel, no transposed copy. Same sums, in another order.
    """

    conv_as_product = False

    def __init__(self, idim: int, odim: int, pe_max_len: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, odim, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(odim * ((idim - 1) // 2), odim))
        self.pos_enc = RelPositionalEncoding(odim, pe_max_len)

    def _conv_rows(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, F] -> relu(conv) as [B, T', D * F'], channel-major features, by the product."""
        conv = self.conv[0]
        b, t_in, f_in = x.shape
        t, f = (t_in - 3) // 2 + 1, (f_in - 3) // 2 + 1
        taps = [x[:, i:i + 2 * t - 1:2, j:j + 2 * f - 1:2] for i in range(3) for j in range(3)]
        patches = torch.stack(taps + [x.new_ones(b, t, f)], dim=2).reshape(b * t, 10, f)  # [B*T', 9 taps + 1, F']
        kernel = torch.cat([conv.weight.reshape(-1, 9), conv.bias[:, None]], dim=1)       # [D, 10]
        y = torch.bmm(kernel.expand(b * t, -1, -1), patches)                               # [B*T', D, F']
        return y.clamp_min_(0).view(b, t, -1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.conv_as_product:
            x = self.out(self._conv_rows(x))                  # [B, T', D]
        else:
            x = self.conv(x.unsqueeze(1))                      # [B, D, T', F']
            b, c, t, f = x.shape
            x = self.out(x.transpose(1, 2).reshape(b, t, c * f))  # [B, T', D]; channel-major features
        x, pos_emb = self.pos_enc(x)
        return x, pos_emb, mask[:, :, 2::2]


class RelPositionMultiHeadedAttention(nn.Module):
    """score = ((q + u) k^T + (q + v) p^T) / sqrt(Dk), p = linear_pos(pe rows).

    Upstream disabled `rel_shift`, so the positional term depends on the absolute key position only.
    """

    def __init__(self, n_head: int, n_feat: int):
        super().__init__()
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(n_head, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(n_head, self.d_k))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1, self.h, self.d_k)  # [B, T, H, Dk]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        q = self._heads(self.linear_q(x))
        k = self._heads(self.linear_k(x)).transpose(1, 2)        # [B, H, T, Dk]
        v = self._heads(self.linear_v(x)).transpose(1, 2)
        p = self._heads(self.linear_pos(pos_emb)).transpose(1, 2)  # [1, H, T, Dk]

        q_u = (q + self.pos_bias_u).transpose(1, 2)              # [B, H, T, Dk]
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        scores = (q_u @ k.transpose(-2, -1) + q_v @ p.transpose(-2, -1)) / math.sqrt(self.d_k)  # [B, H, T, T]

        masked = ~mask.unsqueeze(1)                              # [B, 1, 1, T]: keys to ignore
        scores = scores.masked_fill(masked, float("-inf"))
        # A fully masked row would be NaN after softmax; upstream zeroes it afterwards.
        attn = torch.softmax(scores, dim=-1).masked_fill(masked, 0.0)
        out = (attn @ v).transpose(1, 2).reshape(b, -1, self.h * self.d_k)
        return self.linear_out(out)


class ConvolutionModule(nn.Module):
    """pointwise conv -> GLU -> depthwise conv -> LayerNorm -> SiLU -> pointwise conv."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).masked_fill(~mask, 0.0)  # [B, D, T']; padded frames must not leak into the conv
        x = F.glu(self.pointwise_conv1(x), dim=1)
        x = self.depthwise_conv(x)
        x = F.silu(self.norm(x.transpose(1, 2))).transpose(1, 2)
        x = self.pointwise_conv2(x).masked_fill(~mask, 0.0)
        return x.transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.w_1 = nn.Linear(d, hidden)
        self.w_2 = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class ConformerLayer(nn.Module):
    """Pre-norm: x += MHA; x += conv; x += FFN; then norm_final (no macaron FFN)."""

    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        d = cfg.output_size
        self.self_attn = RelPositionMultiHeadedAttention(cfg.attention_heads, d)
        self.feed_forward = FeedForward(d, cfg.linear_units)
        self.conv_module = ConvolutionModule(d, cfg.cnn_module_kernel)
        self.norm_ff = nn.LayerNorm(d)
        self.norm_mha = nn.LayerNorm(d)
        self.norm_conv = nn.LayerNorm(d)
        self.norm_final = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), mask, pos_emb)
        x = x + self.conv_module(self.norm_conv(x), mask)
        x = x + self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Conv2dSubsampling2(cfg.input_size, cfg.output_size, cfg.pe_max_len)
        self.encoders = nn.ModuleList([ConformerLayer(cfg) for _ in range(cfg.num_blocks)])
        self.after_norm = nn.LayerNorm(cfg.output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, input_size], lengths [B] -> (out [B, T', D], valid mask bool [B, 1, T'])."""
        mask = valid_frames_mask(lengths.to(x.device), x.size(1))  # [B, 1, T]
        x, pos_emb, mask = self.embed(x, mask)
        for layer in self.encoders:
            x = layer(x, mask, pos_emb)
        return self.after_norm(x), mask
