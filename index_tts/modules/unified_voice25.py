"""UnifiedVoice 2.5: the text-to-semantic GPT of IndexTTS-2.5 (upstream `UnifiedVoice` with
`spk_cond_mode="campplus"`, spec-2.5 §4.1).

What changes from v2 (`unified_voice.py`, whose GPT-2 body, position tables, KV cache and emotion
path are reused as they are):
- no speaker conformer, perceiver or speed embedding: the speaker enters as ONE row,
  `spk_emb_proj(style)` (the CAMPPlus embedding [1, 192] projected to d), plus the emotion vector;
- a language embedding (107 rows) added to every text row, start/stop included;
- 3 conditioning rows: [spk_emb_proj(style) + emo_vec, 0, 0].

Generation prompt (one sequence, pad rows dropped: they are masked everywhere upstream, so only
fp32 rounding could tell; spec §4.1.2):
    conds (3) | text [start_text, t'.., stop_text] + lang row | start_mel (mel position 0)
where t' are the segment ids with every start/stop text id (0, 1) removed. Code k is fed back at
mel position k + 1, as in v2.

Shapes: L text ids, n codes, d = model_dim, V = number_mel_codes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from index_tts.modules.conformer import ConformerEncoder
from index_tts.modules.generation import DecodeParams, GenerationResult, decode
from index_tts.modules.perceiver import PerceiverConfig, PerceiverResampler
from index_tts.modules.unified_voice import (
    EMO_PERCEIVER_DIM, GPT2Body, LearnedPositions, UnifiedVoice, UnifiedVoiceConfig,
)

# The official gpt.pth holds `text_head` too; 2.5 inference never reads it.
KNOWN_UNUSED = ("text_head.weight", "text_head.bias")

CAMPPLUS_DIM = 192       # hard-coded upstream: Linear(192 -> model_dim)
LANGUAGE_ROWS = 107      # len(LANGUAGE_DICT) + 1
COND_ROWS = 3            # [speaker + emotion, 0, 0]


class UnifiedVoice25(nn.Module):
    def __init__(self, cfg: UnifiedVoiceConfig):
        super().__init__()
        cfg.verify()
        self.cfg = cfg
        d, emo = cfg.model_dim, cfg.emo_condition_module

        self.spk_emb_proj = nn.Linear(CAMPPLUS_DIM, d)
        self.emo_conditioning_encoder = ConformerEncoder(emo)
        self.emo_perceiver_encoder = PerceiverResampler(PerceiverConfig(
            dim=EMO_PERCEIVER_DIM, dim_context=emo.output_size, num_latents=1,
            heads=emo.attention_heads, ff_mult=emo.perceiver_mult))
        self.text_embedding = nn.Embedding(cfg.number_text_tokens + 1, d)
        self.lang_embedding = nn.Embedding(LANGUAGE_ROWS, d)
        self.emo_layer = nn.Linear(d, d)
        self.emovec_layer = nn.Linear(EMO_PERCEIVER_DIM, d)
        self.mel_embedding = nn.Embedding(cfg.number_mel_codes, d)
        self.gpt = GPT2Body(d, cfg.layers, cfg.heads)
        self.mel_pos_embedding = LearnedPositions(cfg.mel_positions, d)
        self.text_pos_embedding = LearnedPositions(cfg.text_positions, d)
        self.final_norm = nn.LayerNorm(d)
        self.mel_head = nn.Linear(d, cfg.number_mel_codes)

    # Unchanged from v2, with the same module names: the emotion path and the decode primitives
    # (mel embedding, logits, KV cache, prefill, decode step).
    _default_lengths = staticmethod(UnifiedVoice._default_lengths)
    emotion_conformer = UnifiedVoice.emotion_conformer
    get_emovec = UnifiedVoice.get_emovec
    merge_emovec = UnifiedVoice.merge_emovec
    embed_mel = UnifiedVoice.embed_mel
    logits = UnifiedVoice.logits
    setup_cache = UnifiedVoice.setup_cache
    prefill = UnifiedVoice.prefill
    decode_step = UnifiedVoice.decode_step

    # -- conditioning ---------------------------------------------------------------------

    def speaker_latent(self, style: torch.Tensor) -> torch.Tensor:
        """CAMPPlus style [B, 192] -> [B, 1, d] (what upstream returns as the speech latent)."""
        return self.spk_emb_proj(style).unsqueeze(1)

    def build_conds(self, spk_latent: torch.Tensor, emo_vec: torch.Tensor) -> torch.Tensor:
        """[B, 1, d] + [B, d] -> conds [B, 3, d] = [speaker + emotion, 0, 0]."""
        first = spk_latent + emo_vec.unsqueeze(1)
        return F.pad(first, (0, 0, 0, COND_ROWS - 1))

    # -- prompt -----------------------------------------------------------------------------

    def kept_text(self, text_tokens: torch.Tensor) -> torch.Tensor:
        """[L] or [1, L] segment ids -> [L'] with every start/stop text id removed (upstream drops
        the appended 1 and every literal id 0 or 1 inside the text)."""
        if text_tokens.dim() == 2:
            if text_tokens.size(0) != 1:
                raise ValueError("one prompt at a time: pass text_tokens [L] or [1, L]")
            text_tokens = text_tokens[0]
        keep = (text_tokens != self.cfg.start_text_token) & (text_tokens != self.cfg.stop_text_token)
        return text_tokens[keep].long()

    def embed_text(self, kept: torch.Tensor, lang: int) -> torch.Tensor:
        """[L'] kept ids -> [1, L' + 2, d] for [start_text, ids, stop_text], text positions and the
        language row added to every row."""
        ids = F.pad(kept, (1, 0), value=self.cfg.start_text_token)
        ids = F.pad(ids, (0, 1), value=self.cfg.stop_text_token)[None]
        pos = torch.arange(ids.size(1), device=ids.device)
        lang_row = self.lang_embedding(torch.tensor([lang], device=ids.device))   # [1, d]
        return self.text_embedding(ids) + self.text_pos_embedding(pos) + lang_row[:, None]

    def prompt_embeddings(self, spk_latent: torch.Tensor, emo_vec: torch.Tensor, text_tokens: torch.Tensor,
                          lang: int) -> torch.Tensor:
        """-> [1, 3 + L' + 2 + 1, d] = conds | text | start_mel (mel position 0)."""
        text = self.embed_text(self.kept_text(text_tokens.to(emo_vec.device)), lang)
        conds = self.build_conds(spk_latent[:1], emo_vec[:1])
        start = torch.full((1, 1), self.cfg.start_mel_token, dtype=torch.long, device=text.device)
        start = self.embed_mel(start, torch.zeros(1, dtype=torch.long, device=text.device))
        return torch.cat([conds.to(text.dtype), text, start], dim=1)

    # -- teacher-forced pass along the generation path (fixture kind gpt25_forward) ---------

    def forward_codes(self, spk_latent: torch.Tensor, emo_vec: torch.Tensor, text_tokens: torch.Tensor,
                      lang: int, codes: torch.Tensor) -> torch.Tensor:
        """codes [1, n] fed as generation would feed them -> logits [1, n + 1, V]: row 0 predicts
        code 1, row k predicts code k + 1 (code k at mel position k + 1)."""
        prompt = self.prompt_embeddings(spk_latent, emo_vec, text_tokens, lang)   # [1, s, d]
        pos = torch.arange(2, codes.size(1) + 2, device=codes.device)
        mel = self.embed_mel(codes, pos)                                             # [1, n, d]
        h = self.gpt(torch.cat([prompt, mel], dim=1))
        return self.logits(h[:, prompt.size(1) - 1:])


@torch.no_grad()
def generate25(model: UnifiedVoice25, style: torch.Tensor, text_tokens: torch.Tensor, lang: int,
               emo_vec: torch.Tensor, params=None, *, generator: torch.Generator | None = None,
               record_steps: int = 0) -> GenerationResult:
    """Codes for one segment (upstream `inference_speech`): style [1, 192], text_tokens [1, L]
    (segment ids, trailing 1 included), lang index, emo_vec [1, d]. `result.spk_latent` is
    `spk_emb_proj(style)` [1, 1, d]. Decoding (greedy, sampling, beam, beam-sample) is v2's loop."""
    p = DecodeParams.from_any(params)
    p.verify()
    spk_latent = model.speaker_latent(style.to(emo_vec.dtype))
    prompt = model.prompt_embeddings(spk_latent, emo_vec, text_tokens, lang)
    result = decode(model, prompt, p, generator, record_steps)
    result.spk_latent = spk_latent
    return result


# ---------------------------------------------------------------------------------------------
# Loading


def load_gpt25_checkpoint(path_or_state_dict, config: UnifiedVoiceConfig | None = None,
                          device: str | torch.device = "cpu") -> UnifiedVoice25:
    """Build UnifiedVoice25 from `gpt.pth` (flat, or under 'model'), strictly: every key of the
    model must be in the file and every file key used, except KNOWN_UNUSED. (Upstream's loader is
    non-strict; a file from the wrong model version fails here by name instead.)"""
    cfg = config or UnifiedVoiceConfig(number_text_tokens=60509)
    if isinstance(path_or_state_dict, (str, Path)):
        sd = torch.load(path_or_state_dict, map_location=device, weights_only=True, mmap=True)
    else:
        sd = path_or_state_dict
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    sd = {k: v for k, v in sd.items() if k not in KNOWN_UNUSED}
    with torch.device("meta"):
        model = UnifiedVoice25(cfg)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise ValueError(f"2.5 gpt checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device).eval()
