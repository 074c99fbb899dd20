"""The s2mel flow-matching estimator: a DiT over mel frames (upstream `DiT`, with its gpt-fast style
transformer and WaveNet post-net).

It predicts the flow velocity for a noisy mel `x`, given the prompt mel, the frame-level semantic
condition, a global style vector and the flow time t.

Legend: B batch, T frames, M mel bins (`in_channels`, 80), D `hidden_dim`, H heads, Dh = D // H,
C `content_dim`, S `style_dim`.
    x, prompt_x [B, M, T], x_lens [B or 1], t [B], style [B, S], cond [B, T, C] -> velocity [B, M, T]

Checkpoint keys are upstream's, relative to `cfm.estimator.`. Upstream also builds `x_embedder`,
`cond_embedder` and `content_mask_embedder`, which inference never calls; they are not built here
(KNOWN_UNUSED_KEYS) and are skipped on load on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from index_tts.modules import dit_attention, dit_fused
from index_tts.modules.length_regulator import sequence_mask
from index_tts.modules.packed_linear import in_reduced_precision, linear_keeping_bf16, takes_bf16
from index_tts.modules.wavenet import WN, WaveNetConfig
from index_tts.modules.weight_norm import weight_normed

KNOWN_UNUSED_KEYS = (
    "x_embedder.weight_g",
    "x_embedder.weight_v",
    "x_embedder.bias",
    "cond_embedder.weight",
    "content_mask_embedder.weight",
)

# Upstream hard-codes these regardless of config.yaml (DiT.block_size in the config is ignored).
BLOCK_SIZE = 16384  # number of RoPE positions / length of the `input_pos` buffer
ROPE_BASE = 10000.0
NORM_EPS = 1e-5
TIME_FREQ_SIZE = 256  # sinusoidal timestep features
TIME_SCALE = 1000.0  # t in [0, 1] is scaled to [0, 1000] before the sinusoids


@dataclass(frozen=True)
class DiTConfig:
    hidden_dim: int = 512
    num_heads: int = 8
    depth: int = 13
    in_channels: int = 80  # mel bins
    content_dim: int = 512  # width of the condition coming from the length regulator
    style_dim: int = 192  # CAMPPlus embedding width (config: style_encoder.dim)
    style_condition: bool = True  # append the style vector to every frame's input
    uvit_skip_connection: bool = True
    long_skip_connection: bool = True
    is_causal: bool = False
    wavenet: WaveNetConfig = field(default_factory=WaveNetConfig)

    @classmethod
    def from_dict(cls, s2mel: dict) -> "DiTConfig":
        """From the `s2mel` block of config.yaml (uses its `DiT`, `wavenet` and `style_encoder`)."""
        d, wn = s2mel["DiT"], s2mel["wavenet"]
        for flag in ("time_as_token", "style_as_token", "f0_condition", "add_resblock_in_transformer"):
            if d.get(flag, False):
                raise NotImplementedError(f"DiT.{flag}=True is not supported (IndexTTS2 v2 sets it False)")
        if d.get("final_layer_type", "wavenet") != "wavenet":
            raise NotImplementedError("only DiT.final_layer_type='wavenet' is supported")
        if int(wn["hidden_dim"]) != int(d["hidden_dim"]):
            # The final layer's adaLN is fed t_embedder(t), which has DiT.hidden_dim features.
            raise ValueError("wavenet.hidden_dim must equal DiT.hidden_dim")
        if bool(wn.get("style_condition", True)) != bool(d.get("style_condition", True)):
            raise ValueError("DiT.style_condition and wavenet.style_condition must agree (upstream asserts it)")
        return cls(
            hidden_dim=int(d["hidden_dim"]),
            num_heads=int(d["num_heads"]),
            depth=int(d["depth"]),
            in_channels=int(d["in_channels"]),
            content_dim=int(d["content_dim"]),
            style_dim=int(s2mel["style_encoder"]["dim"]),
            style_condition=bool(d.get("style_condition", True)),
            uvit_skip_connection=bool(d.get("uvit_skip_connection", False)),
            long_skip_connection=bool(d.get("long_skip_connection", True)),
            is_causal=bool(d.get("is_causal", False)),
            wavenet=WaveNetConfig.from_dict(wn, gin_channels=int(d["hidden_dim"])),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def ffn_dim(self) -> int:
        # gpt-fast's SwiGLU width: 2/3 of 4*D, rounded up to a multiple of 256.
        n = int(2 * 4 * self.hidden_dim / 3)
        return n if n % 256 == 0 else n + 256 - n % 256


class TimestepEmbedder(nn.Module):
    """t [B] -> [B, D]: sinusoids of 1000*t (cos first, then sin), then a 2-layer MLP."""

    def __init__(self, hidden_dim: int, freq_size: int = TIME_FREQ_SIZE):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq_size, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        half = freq_size // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs)  # stored in the checkpoint too

    def forward(self, t: Tensor) -> Tensor:
        args = TIME_SCALE * t[:, None].float() * self.freqs[None]  # [B, freq_size/2]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()  # normalise in fp32 whatever the activation dtype
        xf = xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


class AdaptiveRMSNorm(nn.Module):
    """`w * RMSNorm(x) + b` with (w, b) = Linear(c). Note: w, not (1 + w)."""

    def __init__(self, dim: int):
        super().__init__()
        self.project_layer = nn.Linear(dim, 2 * dim)
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor, c: Tensor, for_layer: nn.Module | None = None) -> Tensor:
        """for_layer: the linear layer the result goes to; where it multiplies in bf16 (`takes_bf16`)
        the result is rounded to bf16 here, in one pass where the compiled kernels are."""
        modulation = self.project_layer(c)  # [B, 1, 2D]
        bf16 = for_layer is not None and takes_bf16(for_layer)
        if bf16 and dit_fused.available():
            y = dit_fused.adaptive_rms_bf16(x, modulation, self.norm.weight, self.norm.eps)
            if y is not None:
                return y
        w, b = modulation.chunk(2, dim=-1)  # each [B, 1, D]
        y = w * self.norm(x) + b
        return y.bfloat16() if bf16 else y


def rope_cos_sin(positions: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
    """positions [T] -> cos, sin [T, Dh/2] for the rotation of pair j by pos / base^(2j/Dh)."""
    inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, device=positions.device)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(positions.float(), inv_freq)
    rot = torch.polar(torch.ones_like(angles), angles)
    return rot.real.contiguous(), rot.imag.contiguous()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, T, H, Dh]: rotates interleaved pairs (x[2j], x[2j+1]), gpt-fast style (not halves).

    As one complex product (x0 + i x1)(cos + i sin), the same arithmetic as the pairwise formula
    (equal results here) but one vectorised op instead of strided broadcasts: ~25x faster on CPU,
    where the pairwise version was the largest elementwise cost of the DiT (docs/performance.md)."""
    rot = torch.complex(cos, sin)[None, :, None, :]                       # [1, T, 1, Dh/2]
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))        # [B, T, H, Dh/2]
    return torch.view_as_real(pairs * rot).flatten(3).type_as(x)


def bf16_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(q k^T / sqrt(Dh) + mask) v with bf16 products and a bf16 softmax (computed in fp32
    inside, rounded on output). q [B, H, Tq, Dh], k, v [B, H, T, Dh], mask bool [B or 1, 1, 1 or Tq, T]
    or None (every key)
    -> [B, H, Tq, Dh] bf16.

    On a CPU with AVX512-BF16 but no AMX, torch's flash-attention kernel is no faster in bf16 than
    in fp32, while two bf16 GEMMs and a softmax are (balanced and fast only, where measured faster:
    engines/precision.py). A few heads at a time, one per thread, so that each head's [T, T] scores
    (0.7 MB at T = 602) stay in its core's cache between the three steps (~20% faster at 2 x 602)."""
    B, H, Tq, Dh = q.shape  # Tq queries, T keys
    T = k.size(2)
    q = (q * Dh**-0.5).to(torch.bfloat16).reshape(B * H, Tq, Dh)  # a power of two for Dh = 64: exact
    k, v = (y.to(torch.bfloat16).reshape(B * H, T, Dh) for y in (k, v))
    masked = None if mask is None or bool(mask.all()) else ~mask.expand(B, H, -1, -1).reshape(B * H, -1, T)
    out = torch.empty_like(q)  # [B*H, Tq, Dh]
    step = torch.get_num_threads()
    for i in range(0, B * H, step):
        scores = torch.bmm(q[i : i + step], k[i : i + step].transpose(1, 2))  # [step, Tq, T]
        if masked is not None:
            scores.masked_fill_(masked[i : i + step], float("-inf"))
        torch.bmm(torch.softmax(scores, dim=-1), v[i : i + step], out=out[i : i + step])
    return out.view(B, H, Tq, Dh)


class Attention(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.n_head, self.head_dim = config.num_heads, config.head_dim
        inner = self.n_head * self.head_dim
        self.wqkv = nn.Linear(config.hidden_dim, 3 * inner, bias=False)
        self.wo = nn.Linear(inner, config.hidden_dim, bias=False)
        # "bf16" (`bf16_attention`), "bf16_sdpa" (torch's kernel on bf16) or "bf16_tiles" (ours on
        # AMX, dit_attention.py; torch's bf16 kernel where it does not apply: a mask) where one
        # measured faster on this machine (engines/precision.py): then inside `reduced_precision()`
        # (balanced, fast) it replaces the fp32 kernel.
        self.reduced_kernel = "default"

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, queries_from: int = 0) -> Tensor:
        """x [B, T, D] -> [B, Tq, D], the outputs of frames queries_from.. (Tq = T - queries_from;
        every frame is a key); fp32 in exact mode, bf16 in the reduced modes' bf16 kernels."""
        B, T, _ = x.shape
        qkv = linear_keeping_bf16(self.wqkv, x)  # [B, T, 3 * H * Dh]
        heads = None
        if qkv.dtype == torch.bfloat16 and dit_fused.available():  # the reduced modes' bf16 chain
            heads = dit_fused.rope_heads_bf16(qkv, cos, sin, self.n_head, queries_from)
        if heads is None:
            q, k, v = qkv.view(B, T, 3, self.n_head, self.head_dim).unbind(2)  # each [B, T, H, Dh]
            q = apply_rope(q[:, queries_from:], cos[queries_from:], sin[queries_from:])  # [B, Tq, H, Dh]
            k = apply_rope(k, cos, sin)
            heads = (y.transpose(1, 2) for y in (q, k, v))
        q, k, v = heads  # [B, H, Tq or T, Dh]
        if mask is not None and mask.size(-2) > 1:  # a causal mask: its rows are the queries
            mask = mask[..., queries_from:, :]
        reduced = self.reduced_kernel if in_reduced_precision() else "default"
        y = None  # [B, Tq, H * Dh]
        if reduced == "bf16_tiles" and mask is None:  # AMX tiles, straight into wo's layout
            y = dit_attention.attention_bf16(q, k, v)
        if y is None:
            if reduced == "bf16":
                heads_out = bf16_attention(q, k, v, mask)
            elif reduced in ("bf16_sdpa", "bf16_tiles"):  # torch's flash kernel on bf16
                heads_out = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), attn_mask=mask)
            else:
                heads_out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            y = heads_out.transpose(1, 2).reshape(B, T - queries_from, -1)
        return linear_keeping_bf16(self.wo, y)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_dim, config.ffn_dim, bias=False)
        self.w3 = nn.Linear(config.hidden_dim, config.ffn_dim, bias=False)
        self.w2 = nn.Linear(config.ffn_dim, config.hidden_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """In the reduced modes' bf16 kernels the gate and product stay in bf16 (no cast round trip),
        in one pass where the compiled kernels are."""
        a, b = linear_keeping_bf16(self.w1, x), linear_keeping_bf16(self.w3, x)
        gate = dit_fused.swiglu_bf16(a, b) if a.dtype == torch.bfloat16 and dit_fused.available() else None
        if gate is None:
            gate = F.silu(a) * b
        return linear_keeping_bf16(self.w2, gate)


class TransformerBlock(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.attention = Attention(config)
        self.feed_forward = FeedForward(config)
        self.ffn_norm = AdaptiveRMSNorm(config.hidden_dim)
        self.attention_norm = AdaptiveRMSNorm(config.hidden_dim)
        if config.uvit_skip_connection:
            # Built in every block (and stored in the checkpoint), used only by the receiving half.
            self.skip_in_linear = nn.Linear(2 * config.hidden_dim, config.hidden_dim)

    def forward(self, x: Tensor, c: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, skip: Tensor | None,
                queries_from: int = 0) -> Tensor:
        """x [B, T, D] -> [B, T - queries_from, D] (the outputs of frames queries_from..)."""
        if skip is not None:
            x = self.skip_in_linear(torch.cat([x, skip], dim=-1))
        h = x[:, queries_from:] + self.attention(self.attention_norm(x, c, self.attention.wqkv), cos, sin, mask, queries_from)
        return h + self.feed_forward(self.ffn_norm(h, c, self.feed_forward.w1))


class Transformer(nn.Module):
    """Pre-norm transformer with time-conditioned norms and U-ViT skips: the outputs of layers
    i < depth//2 are stacked, and layers i > depth//2 each fuse the most recent one (the middle
    layer does neither), so with depth 13 layer 7 takes layer 5's output, ..., layer 12 layer 0's."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.depth))
        self.norm = AdaptiveRMSNorm(config.hidden_dim)

    def forward(self, x: Tensor, c: Tensor, positions: Tensor, mask: Tensor, frames_from: int = 0) -> Tensor:
        """x [B, T, D], c [B, 1, D], positions [T], mask bool broadcastable to [B, H, T, T] (or None)
        -> [B, T - frames_from, D]: the last layer computes only frames frames_from.. (all frames
        are keys of every layer, so the earlier layers compute them all)."""
        cos, sin = rope_cos_sin(positions, self.config.head_dim)
        uvit, middle = self.config.uvit_skip_connection, self.config.depth // 2
        skips: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            skip = skips.pop() if uvit and i > middle else None
            x = layer(x, c, cos, sin, mask, skip, frames_from if i == len(self.layers) - 1 else 0)
            if uvit and i < middle:
                skips.append(x)
        return self.norm(x, c)


class FinalLayer(nn.Module):
    """adaLN-modulated (1 + scale, shift) non-affine LayerNorm, then a weight-normed Linear."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.linear = weight_normed(nn.Linear(hidden_dim, hidden_dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 2 * hidden_dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # each [B, D]
        x = self.norm_final(x) * (1 + scale[:, None]) + shift[:, None]
        return self.linear(x)


class DiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        D, M, wn = config.hidden_dim, config.in_channels, config.wavenet.hidden_dim
        self.transformer = Transformer(config)
        self.cond_projection = nn.Linear(config.content_dim, D)
        self.t_embedder = TimestepEmbedder(D)
        self.register_buffer("input_pos", torch.arange(BLOCK_SIZE))  # stored in the checkpoint
        self.t_embedder2 = TimestepEmbedder(wn)
        self.conv1 = nn.Linear(D, wn)
        self.conv2 = nn.Conv1d(wn, M, 1)
        self.wavenet = WN(config.wavenet)
        self.final_layer = FinalLayer(wn)
        self.res_projection = nn.Linear(D, wn)
        self.skip_linear = nn.Linear(D + M, D)  # built (and stored) even when the long skip is off
        merged = D + 2 * M + (config.style_dim if config.style_condition else 0)
        self.cond_x_merge_linear = nn.Linear(merged, D)

    def forward(self, x: Tensor, prompt_x: Tensor, x_lens: Tensor, t: Tensor, style: Tensor, cond: Tensor,
                frames_from: int = 0) -> Tensor:
        """The velocity of frames frames_from.. : [B, M, T - frames_from].

        Every frame goes through the transformer's layers but the last (each is a key of the
        others); the last layer's queries and the post-net after it are per frame (the WaveNet's
        convolutions reach `left_context` frames back), so frames before frames_from - left_context
        are not run through them: the result is the same as the whole forward's last
        T - frames_from frames (up to summation order)."""
        B, _, T = x.shape
        t1 = self.t_embedder(t)  # [B, D]
        x = x.transpose(1, 2)  # [B, T, M]
        parts = [x, prompt_x.transpose(1, 2), self.cond_projection(cond)]
        if self.config.style_condition:
            parts.append(style[:, None, :].expand(B, T, style.shape[-1]))
        h = self.cond_x_merge_linear(torch.cat(parts, dim=-1))  # [B, T, D]

        x_mask = sequence_mask(x_lens, T)  # [B or 1, T]; padded frames are never attended to
        if self.config.is_causal:
            attn_mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()[None, None]
        elif bool(x_mask.all()):
            attn_mask = None  # every frame a key (one utterance): the attention kernels run faster unmasked
        else:
            attn_mask = x_mask[:, None, None, :]  # keys only: [B or 1, 1, 1, T]
        start = max(0, frames_from - self.wavenet.left_context)  # T' = T - start frames from here on
        h = self.transformer(h, t1[:, None], self.input_pos[:T], attn_mask, start)  # [B, T', D]
        if start:
            x, x_mask = x[:, start:], x_mask[:, start:]
        if self.config.long_skip_connection:
            h = self.skip_linear(torch.cat([h, x], dim=-1))

        y = self.conv1(h).transpose(1, 2)  # [B, WN, T']
        t2 = self.t_embedder2(t)[:, :, None]  # [B, WN, 1]
        y = self.wavenet(y, x_mask[:, None, :], t2).transpose(1, 2) + self.res_projection(h)  # [B, T', WN]
        y = self.final_layer(y, t1).transpose(1, 2)  # [B, WN, T']
        return self.conv2(y)[..., frames_from - start:]  # [B, M, T - frames_from]
