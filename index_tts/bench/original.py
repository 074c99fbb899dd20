"""The "original-style" path: how upstream IndexTTS2 `infer()` spends its time, rebuilt on our
modules so that both run in one process, on one set of weights, side by side.

What it keeps from upstream (upstream-cpu-baseline.md, spec §8):
- the reference is processed once per call (cold prompt), with both w2v-BERT passes;
- every segment recomputes the speaker conformer + perceiver and `merge_emovec` (two emotion
  conformer + perceiver passes), and segments run one after another;
- decoding works like HF `generate` with a legacy cache: the prompt is prefilled for every beam,
  keys/values grow by `torch.cat` each step, every layer's cache is re-indexed with `index_select`
  on beam reordering, attention is eager (matmul, mask, softmax, matmul);
- fp32 everywhere with torch's default kernels: it runs on its own engine, loaded with
  `kernels="plain"` (its own copy of the weights, loaded only when it runs).

What it does not reproduce (so it understates upstream's time a little): w2v-BERT layers 18-24
(not built here: upstream runs all 24 and keeps layer 17), HF's logits-processor and beam-scorer
overhead (the token choice itself reuses our decoder's logic: about 1 s of 27 in the baseline).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from index_tts import audio
from index_tts.bench.clock import StageClock, patched
from index_tts.modules.generation import generate
from index_tts.modules.s2mel import mel_frames_for_codes


class LegacyCache:
    """HF's legacy tuple cache: per layer (k, v) [B, H, n, Dh], grown by torch.cat."""

    def __init__(self):
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def reorder(self, rows: torch.Tensor, length: int | None = None) -> None:
        # `_temporary_reorder_cache`: a new tensor per layer, whatever was filled.
        self.layers = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.layers]

    def copy_row_to_all(self, row: int = 0, length: int | None = None) -> None:
        pass  # the prefill already ran every beam, as HF expands the prompt before it


class LegacyGPT:
    """UnifiedVoice's generation primitives the way HF's GPT2Model runs them (duck-typed for
    `generation.generate`); everything else is delegated to the wrapped model."""

    def __init__(self, gpt):
        self._gpt = gpt
        self._rows = 1

    def __getattr__(self, name):
        return getattr(self._gpt, name)

    def setup_cache(self, batch: int, max_len: int, **_) -> LegacyCache:
        self._rows = batch
        return LegacyCache()

    def prefill(self, embeds: torch.Tensor, cache: LegacyCache) -> torch.Tensor:
        x = embeds.expand(self._rows, -1, -1)                     # [beams, S, d]
        h = self._body(x, cache)
        return self._gpt.logits(h[:1, -1])                       # rows are equal: [1, V]

    def decode_step(self, codes: torch.Tensor, mel_pos: int, input_pos: int, cache: LegacyCache,
                    kv_len: int | None = None) -> torch.Tensor:
        x = self._gpt.embed_mel(codes.view(-1, 1), torch.tensor([mel_pos], device=codes.device))
        return self._gpt.logits(self._body(x, cache)[:, -1])     # [beams, V]

    def _body(self, x: torch.Tensor, cache: LegacyCache) -> torch.Tensor:
        body = self._gpt.gpt
        for i, block in enumerate(body.h):
            x = x + self._attention(block.attn, block.ln_1(x), i, cache)
            x = x + block.mlp(block.ln_2(x))
        return body.ln_f(x)

    @staticmethod
    def _attention(attn, x: torch.Tensor, layer: int, cache: LegacyCache) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = attn.c_attn(x).split(d, dim=-1)
        q, k, v = (t.view(b, s, attn.heads, -1).transpose(1, 2) for t in (q, k, v))  # [B, H, s, Dh]
        if layer < len(cache.layers):
            past_k, past_v = cache.layers[layer]
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            cache.layers[layer] = (k, v)
        else:
            cache.layers.append((k, v))
        n = k.size(2)
        weights = (q @ k.transpose(-1, -2)) / math.sqrt(q.size(-1))                    # [B, H, s, n]
        causal = torch.ones(s, n, dtype=torch.bool, device=x.device).tril(n - s)
        weights = weights.masked_fill(~causal, torch.finfo(weights.dtype).min).softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, s, d)
        return attn.c_proj(out)


def reference_features(engine, wav: np.ndarray, sr: int, clock: StageClock) -> dict:
    """Upstream's prompt block of infer_generator: both w2v-BERT passes, codec, mel, CAMPPlus."""
    dev = engine.device
    with clock.stage("reference"):
        audio_22k, audio_16k = audio.speaker_audio(wav, sr)
        emo_16k = audio.emotion_audio(wav, sr)
        feats, mask = audio.w2v_features(audio_16k)
        spk_cond_emb = engine.w2v(feats.to(dev), mask.to(dev))
        emo_feats, emo_mask = audio.w2v_features(emo_16k)
        emo_cond_emb = engine.w2v(emo_feats.to(dev), emo_mask.to(dev))
        _, s_ref = engine.codec.quantize(spk_cond_emb)
        ref_mel = audio.mel_spectrogram(audio_22k, engine.cfg["s2mel"]["preprocess_params"]).to(dev)
        fbank = audio.kaldi_fbank(audio_16k)
        style = engine.campplus((fbank - fbank.mean(dim=0, keepdim=True))[None].to(dev))
        prompt_condition = engine.s2mel.length_regulator(s_ref, torch.tensor([ref_mel.size(-1)], device=dev))[0]
    return dict(spk_cond_emb=spk_cond_emb, emo_cond_emb=emo_cond_emb, ref_mel=ref_mel, style=style,
                prompt_condition=prompt_condition)


@torch.no_grad()
def synthesize_original_style(engine, wav: np.ndarray, sr: int, segments: list[torch.Tensor], params,
                              generator: torch.Generator, clock: StageClock, cfm_steps: int, cfg_rate: float,
                              silence_samples: int) -> np.ndarray:
    """Cold prompt, sequential segments, per-segment conditioning -> int16 samples."""
    ref = reference_features(engine, wav, sr, clock)
    gpt, dev = LegacyGPT(engine.gpt), engine.device
    estimator = engine.s2mel.cfm.estimator
    pieces = []
    for tokens in segments:
        tokens = tokens.to(dev)
        with clock.stage("conditioning"):
            spk_latent = engine.gpt.get_conditioning(ref["spk_cond_emb"])
            emovec = engine.gpt.merge_emovec(ref["spk_cond_emb"], ref["emo_cond_emb"], alpha=1.0)
        with clock.stage("gpt_decode"):  # the prefill inside is its own stage
            result = generate(_TimedPrefill(gpt, clock), None, tokens, emovec, params,
                              generator=generator, spk_latent=spk_latent)
        codes = result.codes[:, : result.code_len]
        with clock.stage("latent"):
            latent = engine.gpt.forward_latent(spk_latent, tokens, codes, emovec)
        s_infer = engine.codec.vq2emb(codes.unsqueeze(1)).transpose(1, 2) + engine.s2mel.gpt_layer(latent)
        cond = engine.s2mel.length_regulator(s_infer, mel_frames_for_codes(torch.tensor([codes.size(1)], device=dev)))[0]
        mu = torch.cat([ref["prompt_condition"], cond], dim=1)
        with clock.stage("dit"), patched([(estimator, "forward", clock.wrap(estimator.forward, "dit_forward", "probe"))]):
            out = engine.s2mel.cfm.inference(mu, torch.tensor([mu.size(1)], device=dev), ref["ref_mel"], ref["style"],
                                             n_timesteps=cfm_steps, cfg_rate=cfg_rate, generator=generator)
        with clock.stage("vocoder"):
            wav_out = engine.bigvgan(out[:, :, ref["ref_mel"].size(-1):])[0, 0]
        if pieces:
            pieces.append(torch.zeros(silence_samples))
        pieces.append(torch.clamp(32767 * wav_out, -32767, 32767).cpu())
    return torch.cat(pieces).to(torch.int16).numpy()


class _TimedPrefill:
    """LegacyGPT with its prefill timed as the `gpt_prefill` stage (nested in gpt_decode)."""

    def __init__(self, gpt: LegacyGPT, clock: StageClock):
        self._gpt, self._clock = gpt, clock

    def __getattr__(self, name):
        return getattr(self._gpt, name)

    def prefill(self, embeds, cache):
        with self._clock.stage("gpt_prefill"):
            return self._gpt.prefill(embeds, cache)

    def decode_step(self, *args, **kwargs):
        with self._clock.probe("gpt_decode_forward"):
            return self._gpt.decode_step(*args, **kwargs)
