"""UnifiedVoice v2: the text-to-semantic GPT of IndexTTS2, with its speaker/emotion conditioners.

Parameter names equal the official `gpt.pth` keys, so a strict `load_state_dict` is the whole key
mapping. The GPT-2 body is our own; it keeps HF's `Conv1D` layout (weights stored [in, out],
applied as x @ W + b) and names (`gpt.h.{i}.attn.c_attn.weight`, ...). There is no `wte` and no
`wpe`: the only positional signals are the separate learned text and mel position tables.

Sequence layout fed to the GPT (spec §4.1):
    conds (34 rows) | text [start_text, t1..tL, stop_text] | mel [start_mel, c1.., (stop_mel)]
conds = 32 speaker latents + emo_vec, then speed_emb[1], speed_emb[0].

Shapes: B batch, L text tokens, n codes, d = model_dim, H heads, Dh = d // H, V = number_mel_codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from index_tts.modules.conformer import ConformerConfig, ConformerEncoder
from index_tts.modules import gpt_decode
from index_tts.modules.kv_cache import KVCache
from index_tts.modules.perceiver import PerceiverConfig, PerceiverResampler

# Keys of the official checkpoint that inference never reads; the loader drops them on purpose.
KNOWN_UNUSED = ("text_head.weight", "text_head.bias")

NUM_SPEAKER_LATENTS = 32   # fixed upstream
EMO_PERCEIVER_DIM = 1024   # fixed upstream: PerceiverResampler(1024, ...) with one latent
COND_ROWS = NUM_SPEAKER_LATENTS + 2  # + the two speed rows


@dataclass(frozen=True)
class UnifiedVoiceConfig:
    """The `gpt` block of config.yaml (same names). Defaults are the official v2 values."""

    model_dim: int = 1280
    layers: int = 24
    heads: int = 20
    max_mel_tokens: int = 1815
    max_text_tokens: int = 600
    number_text_tokens: int = 12000
    number_mel_codes: int = 8194
    start_mel_token: int = 8192
    stop_mel_token: int = 8193
    start_text_token: int = 0
    stop_text_token: int = 1
    condition_module: ConformerConfig = field(default_factory=ConformerConfig)
    emo_condition_module: ConformerConfig = field(
        default_factory=lambda: ConformerConfig(output_size=512, linear_units=1024, attention_heads=4, num_blocks=4)
    )
    # Accepted for yaml compatibility; only the values below are implemented.
    use_mel_codes_as_input: bool = True
    mel_length_compression: int = 1024
    train_solo_embeddings: bool = False
    condition_type: str = "conformer_perceiver"
    max_conditioning_inputs: int = 1

    @classmethod
    def from_dict(cls, d: dict) -> "UnifiedVoiceConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown gpt config keys: {sorted(unknown)}")
        kw = dict(d)
        for name in ("condition_module", "emo_condition_module"):
            if isinstance(kw.get(name), dict):
                kw[name] = ConformerConfig.from_dict(kw[name])
        cfg = cls(**kw)
        cfg.verify()
        return cfg

    def verify(self) -> None:
        if not self.use_mel_codes_as_input:
            raise ValueError("gpt.use_mel_codes_as_input=False (MelEncoder input) is not supported")
        if self.train_solo_embeddings:
            raise ValueError("gpt.train_solo_embeddings=True is not supported")
        if self.condition_type != "conformer_perceiver":
            raise ValueError(f"gpt.condition_type {self.condition_type!r} is not supported")
        if self.max_conditioning_inputs != 1:
            raise ValueError("gpt.max_conditioning_inputs must be 1")
        if self.model_dim % self.heads:
            raise ValueError("gpt.model_dim must be divisible by gpt.heads")

    @property
    def mel_positions(self) -> int:
        return self.max_mel_tokens + 2 + self.max_conditioning_inputs

    @property
    def text_positions(self) -> int:
        return self.max_text_tokens + 2


# ---------------------------------------------------------------------------------------------
# GPT-2 body


class Conv1D(nn.Module):
    """HF GPT-2's linear layer: weight stored [in, out], y = x @ W + b."""

    weight_in_out = True  # lets packed_linear.pack_linears swap it for a oneDNN-packed layer

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1] + (self.weight.size(1),)
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(shape)


class GPT2Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1D(d, 3 * d)  # fused Q|K|V along the output dim
        self.c_proj = Conv1D(d, d)

    def forward(self, x: torch.Tensor, layer: int, cache: KVCache | None = None, input_pos: torch.Tensor | None = None,
                visible: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, S, d]. Without a cache: causal self-attention. With one, these rows' keys and
        values are written at `input_pos` [S] and each row attends over the cache up to its own
        position, or, given `visible` [1, max_len] (static shapes), over the whole masked cache."""
        b, s, d = x.shape
        q, k, v = (t.view(b, s, self.heads, -1) for t in self.c_attn(x).split(d, dim=-1))  # [B, S, H, Dh]
        q = q.transpose(1, 2)                                                          # [B, H, S, Dh]
        if cache is None:
            out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        else:
            cache.k[layer, :b].index_copy_(1, input_pos, k)
            cache.v[layer, :b].index_copy_(1, input_pos, v)
            if visible is None:
                n = int(input_pos.max()) + 1
                visible = torch.arange(n, device=x.device)[None, :] <= input_pos[:, None]  # [S, n], causal
            n = visible.size(-1)
            keys, values = (c[layer, :b, :n].transpose(1, 2) for c in (cache.k, cache.v))  # [B, H, n, Dh]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)
        return self.c_proj(out.transpose(1, 2).reshape(b, s, d))


class GPT2MLP(nn.Module):
    def __init__(self, d: int, inner: int):
        super().__init__()
        self.c_fc = Conv1D(d, inner)
        self.c_proj = Conv1D(inner, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # gelu_new


class GPT2Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = GPT2Attention(d, heads)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = GPT2MLP(d, 4 * d)

    def forward(self, x, layer, cache=None, input_pos=None, visible=None):
        x = x + self.attn(self.ln_1(x), layer, cache, input_pos, visible)
        return x + self.mlp(self.ln_2(x))


class GPT2Body(nn.Module):
    """GPT-2 stack driven by input embeddings: blocks then ln_f (no wte, no wpe)."""

    def __init__(self, d: int, layers: int, heads: int):
        super().__init__()
        self.h = nn.ModuleList(GPT2Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, input_pos: torch.Tensor | None = None,
                visible: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, S, d] -> [B, S, d]. With a cache, `input_pos` [S] says where these rows sit;
        `visible` [1, max_len] (bool), when given, masks the whole cache instead of slicing it."""
        if cache is not None:
            cache.own_rows()  # torch's attention reads whole rows
        for i, block in enumerate(self.h):
            x = block(x, i, cache, input_pos, visible)
        return self.ln_f(x)

    def step(self, x: torch.Tensor, cache: KVCache, pos: int, n: int) -> torch.Tensor:
        """One decode row per sequence: x [B, d] written at cache position `pos`, attending over
        positions 0..n-1 (pos among them) -> ln_f(hidden) [B, d]. On the CPU with every linear
        layer on the panel kernel, all blocks run in one call of our kernel (gpt_decode)."""
        blocks = gpt_decode.plan(self, cache)
        return self.ln_f(blocks.run(x, pos, n) if blocks is not None else self.step_blocks(x, cache, pos, n))

    def step_blocks(self, x: torch.Tensor, cache: KVCache, pos: int, n: int) -> torch.Tensor:
        """The blocks of `step` as torch ops: the arithmetic of forward() on [B, 1, d] in fewer,
        larger ops (per block one call writes the keys and values and attends, `KVCache.attend`)."""
        d = x.size(1)
        for i, block in enumerate(self.h):
            attn, ln_1, ln_2 = block.attn, block.ln_1, block.ln_2
            qkv = attn.c_attn(F.layer_norm(x, (d,), ln_1.weight, ln_1.bias, ln_1.eps))       # [B, 3d]
            x = x + attn.c_proj(cache.attend(i, qkv, pos, n))                                # [B, d]
            x = x + block.mlp(F.layer_norm(x, (d,), ln_2.weight, ln_2.bias, ln_2.eps))
        return x


class LearnedPositions(nn.Module):
    """Keyed `<name>.emb.weight` as upstream's LearnedPositionEmbeddings."""

    def __init__(self, rows: int, d: int):
        super().__init__()
        self.emb = nn.Embedding(rows, d)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.emb(positions)


# ---------------------------------------------------------------------------------------------
# UnifiedVoice


class UnifiedVoice(nn.Module):
    def __init__(self, cfg: UnifiedVoiceConfig):
        super().__init__()
        cfg.verify()
        self.cfg = cfg
        d = cfg.model_dim
        spk, emo = cfg.condition_module, cfg.emo_condition_module

        self.conditioning_encoder = ConformerEncoder(spk)
        self.perceiver_encoder = PerceiverResampler(PerceiverConfig(
            dim=d, dim_context=spk.output_size, num_latents=NUM_SPEAKER_LATENTS,
            heads=spk.attention_heads, ff_mult=spk.perceiver_mult))
        self.emo_conditioning_encoder = ConformerEncoder(emo)
        self.emo_perceiver_encoder = PerceiverResampler(PerceiverConfig(
            dim=EMO_PERCEIVER_DIM, dim_context=emo.output_size, num_latents=1,
            heads=emo.attention_heads, ff_mult=emo.perceiver_mult))

        self.text_embedding = nn.Embedding(cfg.number_text_tokens + 1, d)
        self.emo_layer = nn.Linear(d, d)
        self.emovec_layer = nn.Linear(EMO_PERCEIVER_DIM, d)
        self.mel_embedding = nn.Embedding(cfg.number_mel_codes, d)
        self.gpt = GPT2Body(d, cfg.layers, cfg.heads)
        self.mel_pos_embedding = LearnedPositions(cfg.mel_positions, d)
        self.text_pos_embedding = LearnedPositions(cfg.text_positions, d)
        self.final_norm = nn.LayerNorm(d)
        # `text_head` is in the checkpoint but unused at inference: not built (see KNOWN_UNUSED).
        self.mel_head = nn.Linear(d, cfg.number_mel_codes)
        self.speed_emb = nn.Embedding(2, d)

    # -- conditioning ---------------------------------------------------------------------

    @staticmethod
    def _default_lengths(x: torch.Tensor) -> torch.Tensor:
        # Upstream quirk (spec §9.3): the length passed is the feature dim (1024), not T.
        return torch.full((x.size(0),), x.size(-1), dtype=torch.long, device=x.device)

    def speaker_conformer(self, spk_cond_emb: torch.Tensor, lengths: torch.Tensor | None = None):
        """[B, T, 1024] -> (out [B, T', C], mask [B, 1, T'])."""
        lengths = self._default_lengths(spk_cond_emb) if lengths is None else lengths
        return self.conditioning_encoder(spk_cond_emb, lengths)

    def emotion_conformer(self, emo_cond_emb: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = self._default_lengths(emo_cond_emb) if lengths is None else lengths
        return self.emo_conditioning_encoder(emo_cond_emb, lengths)

    def get_conditioning(self, spk_cond_emb: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Speaker features [B, T, 1024] -> speaker latents [B, 32, d]."""
        x, mask = self.speaker_conformer(spk_cond_emb, lengths)
        latent_mask = F.pad(mask.squeeze(1), (NUM_SPEAKER_LATENTS, 0), value=True)  # [B, 32 + T']
        return self.perceiver_encoder(x, latent_mask)

    def get_emovec(self, cond_emb: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Features [B, T, 1024] -> emotion vector [B, d]."""
        x, mask = self.emotion_conformer(cond_emb, lengths)
        latent_mask = F.pad(mask.squeeze(1), (1, 0), value=True)
        emo = self.emo_perceiver_encoder(x, latent_mask).squeeze(1)  # [B, 1024]
        return self.emo_layer(self.emovec_layer(emo))

    def merge_emovec(self, spk_cond_emb: torch.Tensor, emo_cond_emb: torch.Tensor, alpha: float = 1.0,
                     spk_lengths: torch.Tensor | None = None, emo_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """base + alpha * (emo - base), in that order as upstream."""
        emo = self.get_emovec(emo_cond_emb, emo_lengths)
        base = self.get_emovec(spk_cond_emb, spk_lengths)
        return base + alpha * (emo - base)

    def build_conds(self, spk_latent: torch.Tensor, emo_vec: torch.Tensor) -> torch.Tensor:
        """[B, 32, d] + [B, d] -> conds [B, 34, d]: latents + emo_vec, speed_emb[1], speed_emb[0]."""
        b = spk_latent.size(0)
        speed = self.speed_emb.weight  # rows constant in released inference (duration-free mode)
        return torch.cat([
            spk_latent + emo_vec.unsqueeze(1),
            speed[1].expand(b, 1, -1),
            speed[0].expand(b, 1, -1),
        ], dim=1)

    # -- embeddings -----------------------------------------------------------------------

    def embed_text(self, text_tokens: torch.Tensor) -> torch.Tensor:
        """[B, L] ids -> [B, L + 2, d] for [start_text, ids, stop_text] with text positions."""
        ids = F.pad(text_tokens.long(), (1, 0), value=self.cfg.start_text_token)
        ids = F.pad(ids, (0, 1), value=self.cfg.stop_text_token)
        pos = torch.arange(ids.size(1), device=ids.device)
        return self.text_embedding(ids) + self.text_pos_embedding(pos)

    def embed_mel(self, codes: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """codes [B, S], positions [S] or [B, S] -> [B, S, d]."""
        return self.mel_embedding(codes.long()) + self.mel_pos_embedding(positions)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """GPT output (already ln_f-ed) -> mel logits; final_norm is a second LayerNorm."""
        return self.mel_head(self.final_norm(hidden))

    # -- teacher-forced latent pass (spec §4.1.2) -------------------------------------------

    def forward_latent(self, spk_latent: torch.Tensor, text_tokens: torch.Tensor, codes: torch.Tensor,
                       emo_vec: torch.Tensor) -> torch.Tensor:
        """-> latent [B, n, d]: final_norm-ed hidden states at the inputs start, c1 .. c(n-1).

        No filtering of ids 0/1 here (unlike generation). Code k sits at mel position k.
        """
        cfg = self.cfg
        conds = self.build_conds(spk_latent, emo_vec)                   # [B, 34, d]
        text = self.embed_text(text_tokens)                              # [B, L + 2, d]
        mel_ids = F.pad(codes.long(), (1, 0), value=cfg.start_mel_token)
        mel_ids = F.pad(mel_ids, (0, 1), value=cfg.stop_mel_token)       # [B, n + 2]
        mel = self.embed_mel(mel_ids, torch.arange(mel_ids.size(1), device=codes.device))
        h = self.gpt(torch.cat([conds, text, mel], dim=1))               # [B, 34 + L + 2 + n + 2, d]
        h = self.final_norm(h[:, -mel.size(1):])
        return h[:, :-2]

    def forward(self, spk_latent, text_tokens, codes, emo_vec):
        return self.forward_latent(spk_latent, text_tokens, codes, emo_vec)

    # -- generation primitives --------------------------------------------------------------

    def prompt_embeddings(self, spk_latent: torch.Tensor, emo_vec: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        """Generation prompt for ONE sequence: [1, s + 1, d] = conds | text | start_mel (mel pos 0).

        Upstream drops every text id equal to start/stop text token before adding its own.
        """
        if text_tokens.dim() == 2:
            if text_tokens.size(0) != 1:
                raise ValueError("prompt_embeddings builds one prompt; pass text_tokens [L] or [1, L]")
            text_tokens = text_tokens[0]
        keep = (text_tokens != self.cfg.stop_text_token) & (text_tokens != self.cfg.start_text_token)
        text = self.embed_text(text_tokens[keep].unsqueeze(0))
        conds = self.build_conds(spk_latent[:1], emo_vec[:1])
        start = torch.full((1, 1), self.cfg.start_mel_token, dtype=torch.long, device=text.device)
        start = self.embed_mel(start, torch.zeros(1, dtype=torch.long, device=text.device))
        return torch.cat([conds, text, start], dim=1)

    def setup_cache(self, batch: int, max_len: int, dtype: torch.dtype | None = None,
                    device: torch.device | None = None, zeroed: bool = False) -> KVCache:
        p = self.final_norm.weight  # a layer norm: never repacked, in the GPT's dtype and device
        d, h = self.cfg.model_dim, self.cfg.heads
        return KVCache(self.cfg.layers, batch, h, max_len, d // h, dtype or p.dtype, device or p.device, zeroed)

    def prefill(self, embeds: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """embeds [B, S, d] written at positions 0..S-1 -> logits of the last row [B, V]."""
        pos = torch.arange(embeds.size(1), device=embeds.device)
        h = self.gpt(embeds, cache, pos)
        return self.logits(h[:, -1])

    def decode_step(self, codes: torch.Tensor, mel_pos: int, input_pos: int, cache: KVCache,
                    kv_len: int | None = None) -> torch.Tensor:
        """codes [B] fed at sequence row `input_pos` with mel position `mel_pos` -> logits [B, V].

        kv_len: cache positions attended over, input_pos + 1 unless given (then the row must be
        the last of them). Codes and logits are in beam order; the cache may keep the beams in
        other rows (KVCache.slot), so they are fed in row order and read back in beam order."""
        codes = codes.view(-1)
        if cache.rows_order is not None:
            codes = codes[cache.rows_order]
        x = self.mel_embedding(codes) + self.mel_pos_embedding.emb.weight[mel_pos]    # [B, d]
        kv_len = input_pos + 1 if kv_len is None else kv_len
        logits = self.logits(self.gpt.step(x, cache, input_pos, kv_len))             # [B, V]
        return logits if cache.beam_order is None else logits[cache.beam_order]


# ---------------------------------------------------------------------------------------------
# Loading


def _unwrap(sd: dict) -> dict:
    if "model" in sd and isinstance(sd["model"], dict):
        return sd["model"]
    return sd


def load_gpt_checkpoint(path_or_state_dict, config: UnifiedVoiceConfig | None = None,
                        device: str | torch.device = "cpu") -> UnifiedVoice:
    """Build UnifiedVoice from `gpt.pth` (a raw state dict or one under 'model'), strictly.

    The model is built on the meta device and the checkpoint tensors are assigned, so the weights
    are not held twice. Missing or unexpected keys raise a ValueError naming them;
    KNOWN_UNUSED keys are skipped on purpose.
    """
    cfg = config or UnifiedVoiceConfig()
    if isinstance(path_or_state_dict, (str, Path)):
        sd = torch.load(path_or_state_dict, map_location=device, weights_only=True, mmap=True)
    else:
        sd = path_or_state_dict
    sd = {k: v for k, v in _unwrap(sd).items() if k not in KNOWN_UNUSED}

    with torch.device("meta"):
        model = UnifiedVoice(cfg)
    expected = set(model.state_dict().keys())
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        raise ValueError(f"gpt checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device).eval()
