"""The IndexTTS2 (v2.0) neural engine: upstream `IndexTTS2.infer()`, rebuilt from our modules.

Pipeline (architecture-spec.md §2): voice prompt -> emotion vector -> per text segment
[autoregressive codes -> latent pass -> s2mel (length regulator + DiT/CFM) -> BigVGAN] -> join.

Unlike upstream, everything that depends only on the voice is computed once per voice and kept in
an LRU keyed by the audio's content hash (never its path); this changes no output, because
upstream's per-segment recomputation is deterministic.

Model directory layout (the names the conformance fixtures use):

    config.yaml  gpt.pth  s2mel.pth  feat1.pt  feat2.pt  wav2vec2bert_stats.pt  bpe.model
    w2v_bert/{config.json, model.safetensors}       facebook/w2v-bert-2.0
    semantic_codec_model.safetensors                amphion/MaskGCT semantic_codec/model.safetensors
    campplus_cn_common.bin                          funasr/campplus
    bigvgan/{config.json, bigvgan_generator.pt}     nvidia/bigvgan_v2_22khz_80band_256x
    qwen0.6bemo4-merge/                             optional: text-to-emotion model
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from index_tts import audio
from index_tts.emotion import EMO_NUM, EmotionSpec, scale_vector
from index_tts.engines import file_pages
from index_tts.engines.base import EngineRequest, GenerationParams, ProgressFn, Segment, no_progress
from index_tts.engines.request_flow import RequestFlow
from index_tts.engines.precision import (decode_model, decoder_precision, gpt_precision, prepare_cpu,
                                         prepare_cuda)
from index_tts.model_store.model_files import missing_files  # noqa: F401  (part of the engine contract)
from index_tts.model_store import readahead
from index_tts.model_store.layout import ModelFiles, as_model_files
from index_tts.modules import huge_pages
from index_tts.modules.bigvgan import load_bigvgan
from index_tts.modules.campplus import load_campplus
from index_tts.modules.generation import generate
from index_tts.modules.s2mel import S2Mel, S2MelConfig, mel_frames_for_codes
from index_tts.modules.semantic_codec import SemanticCodecConfig, load_semantic_codec
from index_tts.modules.unified_voice import UnifiedVoiceConfig, load_gpt_checkpoint
from index_tts.modules.w2v_bert import W2VBertEncoder

SAMPLE_RATE = 22050
VERSION = "2.0"
CFM_STEPS = 25
CFG_RATE = 0.7
# quality="fast" (a documented quality trade-off, docs/performance.md): the DiT's cost is
# steps x (prompt + new frames), so both are cut. 10 Euler steps instead of 25, and at most
# FAST_PROMPT_FRAMES (3 s) of the reference mel as the DiT's in-context prompt.
FAST_CFM_STEPS = 10
FAST_PROMPT_FRAMES = 258
VOICE_CACHE_SIZE = 8

QWEN_DIR_DEFAULT = "qwen0.6bemo4-merge"

# on_segment(segment index, int16 samples, sample rate)
SegmentCallback = Callable[[int, np.ndarray, int], None]

# ---------------------------------------------------------------------------------------------
# Value objects


@dataclass(frozen=True)
class VoicePrompt:
    """Everything derived from one speaker reference. Immutable; shared across requests."""

    spk_cond_emb: torch.Tensor      # [1, T, 1024] normalised w2v-BERT layer 17 (22.05k -> 16k path)
    emo_cond_emb: torch.Tensor      # [1, Te, 1024] the same voice along the direct 16k path
    ref_mel: torch.Tensor           # [1, 80, P]
    style: torch.Tensor             # [1, 192] CAMPPlus
    prompt_condition: torch.Tensor  # [1, P, C] length-regulated S_ref
    spk_latent: torch.Tensor        # [1, 32, d] speaker perceiver latents
    base_emovec: torch.Tensor       # [1, d] get_emovec of the voice itself
    voice_emovec: torch.Tensor      # [1, d] get_emovec of emo_cond_emb: the emotion "same as the voice"


@dataclass
class Trace:
    """Optional record of intermediates, named as the conformance fixtures name them."""

    values: dict

    def __call__(self, name: str, value) -> None:
        self.values[name] = value


def _no_trace(name: str, value) -> None:
    pass


def _pieces_text(pieces: list[str]) -> str:
    """SentencePiece pieces -> readable text ("▁" marks a word start)."""
    return "".join(pieces).replace("▁", " ").strip()


# ---------------------------------------------------------------------------------------------
# The engine


class IndexTTS2Engine(RequestFlow):
    name = "IndexTTS2"
    version = VERSION
    sample_rate = SAMPLE_RATE
    file_set = "2"  # which files it needs (model_store.model_files)

    def __init__(self, model_dir: ModelFiles | Path, device: str = "cpu", kernels: str = "auto"):
        # Logical name -> real path (`model_dir / "gpt.pth"`): a flat folder or the cache_hub hub cache.
        self.model_dir = as_model_files(model_dir)
        self.device = device
        # "auto": each layer on this machine's fastest kernel (engines/precision.py); "plain":
        # torch's default fp32 layers (the benchmark's original-style path).
        self.kernels = kernels
        self.kernel_counts: dict[str, dict[str, int]] = {}
        self.cfg = yaml.safe_load((self.model_dir / "config.yaml").read_text(encoding="utf-8"))
        self.version = str(self.cfg.get("version", VERSION))
        self._voices: OrderedDict[str, VoicePrompt] = OrderedDict()
        self._emotion_audio: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.tokenizer = None
        self.qwen = None

    @classmethod
    def load(cls, model_dir: ModelFiles | str | Path, progress: ProgressFn = no_progress, device: str | None = None) -> "IndexTTS2Engine":
        device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        files = as_model_files(model_dir)
        missing = missing_files(files, cls.file_set)
        if missing:
            raise FileNotFoundError(f"{cls.name} model ({files.describe()}) lacks: {', '.join(missing)}")
        engine = cls(files, device)
        engine._load_modules(progress)
        return engine

    def _load_modules(self, progress: ProgressFn, text: bool = True) -> None:
        d, cfg = self.model_dir, self.cfg
        steps = [
            ("GPT", lambda: setattr(self, "gpt", load_gpt_checkpoint(d / cfg["gpt_checkpoint"], UnifiedVoiceConfig.from_dict(cfg["gpt"])))),
            ("s2mel", lambda: setattr(self, "s2mel", S2Mel.from_checkpoint(S2MelConfig.from_dict(cfg["s2mel"]), d / cfg["s2mel_checkpoint"]))),
            ("w2v-BERT", lambda: setattr(self, "w2v", W2VBertEncoder.from_dir(d / "w2v_bert", d / cfg["w2v_stat"]))),
            ("semantic codec", lambda: setattr(self, "codec", load_semantic_codec(d / "semantic_codec_model.safetensors", SemanticCodecConfig.from_dict(cfg["semantic_codec"])))),
            ("CAMPPlus", lambda: setattr(self, "campplus", load_campplus(d / "campplus_cn_common.bin"))),
            ("BigVGAN", lambda: setattr(self, "bigvgan", load_bigvgan(d / "bigvgan"))),
            ("emotion matrices", self._load_matrices),
        ]
        if text:  # the conformance fixtures give token ids and need no text front end
            steps.append(("text front end", self._load_text))
        weights = {"GPT": [cfg["gpt_checkpoint"]], "s2mel": [cfg["s2mel_checkpoint"]], "w2v-BERT": ["w2v_bert/model.safetensors"],
                   "semantic codec": ["semantic_codec_model.safetensors"], "CAMPPlus": ["campplus_cn_common.bin"],
                   "BigVGAN": ["bigvgan/bigvgan_generator.pt"]}
        for i, (what, step) in enumerate(steps):
            progress(i / len(steps), f"loading {what}")
            for name in weights.get(what, []):
                if readahead.wanted(d / name):  # slow mounts: one sequential pass, then the load reads memory
                    readahead.read_ahead(d / name)
            step()
        self._place_modules(gpu_gpt_dtype=torch.float16)  # as upstream's use_fp16
        progress(1.0, "ready")

    def _place_modules(self, gpu_gpt_dtype: torch.dtype) -> None:
        for m in (self.gpt, self.s2mel, self.w2v, self.codec, self.campplus, self.bigvgan):
            m.to(self.device).eval()
        if self.device.startswith("cuda"):
            prepare_cuda(self, gpu_gpt_dtype)
        else:
            self.kernel_counts = prepare_cpu(self, self.kernels)
            self._release_front_end()

    def _release_front_end(self) -> None:
        """The voice front end's file-backed weights (precision.GPT_FRONT_END) leave RAM until the next new voice."""
        file_pages.release([self.model_dir / self.cfg["gpt_checkpoint"], self.model_dir / "w2v_bert" / "model.safetensors"])

    def _load_matrices(self) -> None:
        emo_num = tuple(self.cfg.get("emo_num", EMO_NUM))
        if len(emo_num) != len(EMO_NUM):
            raise ValueError(f"config.yaml emo_num must have {len(EMO_NUM)} groups, got {emo_num}")
        load = lambda name: torch.load(self.model_dir / self.cfg[name], map_location=self.device, weights_only=True)
        spk, emo = load("spk_matrix"), load("emo_matrix")
        if spk.size(0) != sum(emo_num) or emo.size(0) != sum(emo_num):
            raise ValueError(f"feat1.pt/feat2.pt have {spk.size(0)}/{emo.size(0)} rows; emo_num sums to {sum(emo_num)}")
        self.spk_groups = torch.split(spk.float(), emo_num)  # 8 x [n_i, 192]
        self.emo_groups = torch.split(emo.float(), emo_num)  # 8 x [n_i, d]

    def _load_text(self) -> None:
        from index_tts.text import TextNormalizer, TextTokenizer

        normalizer = TextNormalizer()
        normalizer.load()
        self.tokenizer = TextTokenizer(self.model_dir / self.cfg["dataset"]["bpe_model"], normalizer)

    # -- text ---------------------------------------------------------------------------------

    def _segment_pieces(self, text: str, max_tokens: int, glossary: dict | None = None) -> list[list[str]]:
        from index_tts.text import split_segments

        # The GPT's text positions bound a segment. The official model's 600 is also the UI's
        # maximum, so this only bites for smaller (test) models, which would otherwise crash.
        max_tokens = min(max_tokens, self.gpt.cfg.max_text_tokens)
        return split_segments(self.tokenizer.tokenize(text, glossary), max_tokens)

    def segments(self, text: str, max_tokens: int) -> list[Segment]:
        return [Segment(_pieces_text(p), len(p)) for p in self._segment_pieces(text, max_tokens)]

    # -- voice and emotion --------------------------------------------------------------------

    @torch.no_grad()
    def voice_prompt(self, wav: np.ndarray, sr: int, key: str | None = None, trace=_no_trace,
                     quality: str = "exact") -> VoicePrompt:
        """Speaker reference (float32 mono at `sr`) -> VoicePrompt, cached under `key` (and the mode).

        quality="fast" makes its own prompt, cheaper: one w2v-BERT pass, the speaker's 16 kHz audio
        standing for the emotion reference's too (upstream resamples the same file a second way and
        runs w2v-BERT again), and on the CPU the front end in bf16 where measured faster."""
        fast = quality == "fast"
        if key is not None:
            key = f"{key} (fast)" if fast else key
            with self._cache_lock:
                if key in self._voices:
                    self._voices.move_to_end(key)
                    return self._voices[key]
        # The heap's freed blocks (the last request's activations, ~0.4 GiB after a segment) go back
        # before the front end's pages come in: a new voice is the peak of a request's memory.
        huge_pages.return_freed_memory()
        dev = self.device
        audio_22k, audio_16k = audio.speaker_audio(wav, sr)
        trace("audio_22k", audio_22k), trace("audio_16k", audio_16k)
        with gpt_precision(dev, quality):
            feats, mask = audio.w2v_features(audio_16k)
            trace("input_features", feats), trace("attention_mask", mask)
            if fast:
                spk_cond_emb = emo_cond_emb = self.w2v(feats.to(dev), mask.to(dev))
            else:
                emo_16k = audio.emotion_audio(wav, sr)
                emo_feats, emo_mask = audio.w2v_features(emo_16k)
                trace("emo_audio_16k", emo_16k), trace("emo_input_features", emo_feats), trace("emo_attention_mask", emo_mask)
                spk_cond_emb, emo_cond_emb = self._w2v_pair((feats, mask), (emo_feats, emo_mask))
            trace("spk_cond_emb", spk_cond_emb), trace("emo_cond_emb", emo_cond_emb)
            self._release_front_end()  # w2v-BERT is done with: its pages need not sit beside the conditioners'

            gpt_dtype = next(self.gpt.parameters()).dtype
            ref_mel = audio.mel_spectrogram(audio_22k, self.cfg["s2mel"]["preprocess_params"]).to(dev)
            fbank = audio.kaldi_fbank(audio_16k)
            fbank = fbank - fbank.mean(dim=0, keepdim=True)
            trace("ref_mel", ref_mel), trace("campplus_feat", fbank)
            style = self.campplus(fbank[None].to(dev))
            trace("style", style)
            prompt_condition, spk_latent = self._speaker_conditions(spk_cond_emb, ref_mel, style, trace)
            trace("prompt_condition", prompt_condition), trace("spk_latent", spk_latent)
            base_emovec = self.gpt.get_emovec(spk_cond_emb.to(gpt_dtype))
            voice_emovec = base_emovec if fast else self.gpt.get_emovec(emo_cond_emb.to(gpt_dtype))

        prompt = VoicePrompt(
            spk_cond_emb=spk_cond_emb, emo_cond_emb=emo_cond_emb, ref_mel=ref_mel, style=style,
            prompt_condition=prompt_condition, spk_latent=spk_latent,
            base_emovec=base_emovec, voice_emovec=voice_emovec,
        )
        self._release_front_end()
        if key is not None:
            with self._cache_lock:
                self._voices[key] = prompt
                while len(self._voices) > VOICE_CACHE_SIZE:
                    self._voices.popitem(last=False)
        return prompt

    def _speaker_conditions(self, spk_cond_emb: torch.Tensor, ref_mel: torch.Tensor, style: torch.Tensor, trace):
        """-> (prompt condition [1, P, C] for the DiT, speaker latents [1, 32, d] for the GPT)."""
        indices, s_ref = self.codec.quantize(spk_cond_emb)
        trace("S_ref_indices", indices), trace("S_ref", s_ref)
        prompt_condition = self.s2mel.length_regulator(s_ref, torch.tensor([ref_mel.size(-1)], device=self.device))[0]
        gpt_dtype = next(self.gpt.parameters()).dtype
        return prompt_condition, self.gpt.get_conditioning(spk_cond_emb.to(gpt_dtype))

    def _w2v_pair(self, speaker: tuple[torch.Tensor, torch.Tensor], emotion: tuple[torch.Tensor, torch.Tensor]):
        """w2v-BERT on the speaker's and the emotion reference's (features, mask) -> their embeddings.
        Of equal length (the same reference resampled two ways: the usual case) they go through as
        one batch of two: each row's numbers are the same as alone (bit for bit on an Intel Xeon;
        up to summation order wherever a kernel blocks rows otherwise), and the weights are read
        once, not twice."""
        (feats, mask), (emo_feats, emo_mask) = speaker, emotion
        dev = self.device
        if feats.shape != emo_feats.shape or not torch.equal(mask, emo_mask):
            return self.w2v(feats.to(dev), mask.to(dev)), self.w2v(emo_feats.to(dev), emo_mask.to(dev))
        both = self.w2v(torch.cat([feats, emo_feats]).to(dev), torch.cat([mask, emo_mask]).to(dev))
        return both[:1], both[1:]

    def _w2v_emb(self, audio_16k: np.ndarray, trace=_no_trace, prefix: str = "") -> torch.Tensor:
        feats, mask = audio.w2v_features(audio_16k)
        trace(f"{prefix}input_features", feats), trace(f"{prefix}attention_mask", mask)
        return self.w2v(feats.to(self.device), mask.to(self.device))

    def _emotion_audio_vector(self, spec: EmotionSpec, trace) -> torch.Tensor:
        """get_emovec of an emotion reference [1, d], cached per reference (by content)."""
        samples = np.ascontiguousarray(spec.audio, dtype=np.float32)
        key = hashlib.sha256(samples.tobytes() + str(spec.audio_sr).encode()).hexdigest()
        with self._cache_lock:
            if key in self._emotion_audio:
                return self._emotion_audio[key]
        emo_16k = audio.emotion_audio(samples, spec.audio_sr)
        trace("emo_audio_16k", emo_16k)
        emb = self._w2v_emb(emo_16k, trace, "emo_")
        trace("emo_cond_emb", emb)
        emovec = self.gpt.get_emovec(emb.to(next(self.gpt.parameters()).dtype))
        self._release_front_end()
        with self._cache_lock:
            self._emotion_audio[key] = emovec
            while len(self._emotion_audio) > VOICE_CACHE_SIZE:
                self._emotion_audio.popitem(last=False)
        return emovec

    def text_emotion(self, text: str) -> tuple[tuple[float, ...], str]:
        """Text -> 8 emotion weights, with the model used: Qwen when present, else the lexicon."""
        qwen_dir = self.model_dir / str(self.cfg.get("qwen_emo_path", QWEN_DIR_DEFAULT)).strip().rstrip("/")
        if self.qwen is None and (qwen_dir / "config.json").is_file():
            from index_tts.text.emotion_llm import QwenEmotion

            self.qwen = QwenEmotion(qwen_dir, device=self.device)
        if self.qwen is not None:
            return self.qwen.inference(text), "qwen"
        from index_tts.text.emotion_lexicon import text_to_emotion

        return text_to_emotion(text), "lexicon (no Qwen emotion model in the model directory)"

    @torch.no_grad()
    def emotion_vector(self, prompt: VoicePrompt, spec: EmotionSpec, text: str = "",
                       generator: torch.Generator | None = None, trace=_no_trace) -> torch.Tensor:
        """The emovec added to the speaker latents (spec §2.1, §2.3, §2.6.1, §7.2) -> [1, d]."""
        if spec.mode == "audio":
            emo = self._emotion_audio_vector(spec, trace)
            emovec = prompt.base_emovec + spec.weight * (emo - prompt.base_emovec)
        else:
            # Same as voice, vector and text: the emotion prompt is the voice read at 16k, alpha = 1.
            emovec = prompt.base_emovec + 1.0 * (prompt.voice_emovec - prompt.base_emovec)
        trace("merged_emovec", emovec)
        if spec.mode in ("vector", "text"):
            if spec.mode == "text":
                raw, _ = self.text_emotion(spec.text or text)
            else:
                raw = spec.vector
            weights = scale_vector(raw, spec.weight)
            rows = self._emotion_rows(prompt.style, spec.use_random, generator)
            trace("emo_row_index", rows)
            w = torch.tensor(weights, dtype=torch.float32, device=emovec.device)
            picked = torch.stack([g[r] for g, r in zip(self.emo_groups, rows.tolist())])  # [8, d]
            emovec_mat = (w[:, None] * picked).sum(0, keepdim=True)
            emovec = emovec_mat.to(emovec.dtype) + (1 - w.sum()) * emovec
        return emovec

    def _emotion_rows(self, style: torch.Tensor, use_random: bool, generator: torch.Generator | None) -> torch.Tensor:
        """One row per emotion group: nearest to `style` by cosine in CAMPPlus space, or random."""
        if use_random:
            return torch.stack([torch.randint(g.size(0), (), generator=generator) for g in self.spk_groups])
        return torch.stack([F.cosine_similarity(style.float(), g, dim=1).argmax() for g in self.spk_groups])

    # -- synthesis ----------------------------------------------------------------------------

    @torch.no_grad()
    def synthesize_segment(self, prompt: VoicePrompt, emovec: torch.Tensor, text_tokens: torch.Tensor,
                           params: GenerationParams, generator: torch.Generator | None = None,
                           z: torch.Tensor | None = None, trace=_no_trace, prefix: str = "",
                           duration_factor: float = 1.0, **content_options) -> torch.Tensor:
        """One text segment (int ids [1, L]) -> float waveform [N] scaled to ±32767."""
        s_infer = self.segment_content(prompt, emovec, text_tokens, params, generator, trace, prefix, **content_options)
        if s_infer is None:
            return torch.zeros(0)
        frames = self.mel_frames(s_infer.size(1), duration_factor)
        return self.segment_audio(prompt, s_infer, frames, params, generator, z, trace, prefix)

    @torch.no_grad()
    def segment_content(self, prompt: VoicePrompt, emovec: torch.Tensor, text_tokens: torch.Tensor,
                        params: GenerationParams, generator: torch.Generator | None = None,
                        trace=_no_trace, prefix: str = "") -> torch.Tensor | None:
        """One text segment -> S_infer [1, n, 1024], the length regulator's input (None: no codes).
        This is all that the seed decides about the words; the tempo comes after."""
        text_tokens = text_tokens.to(self.device)
        with gpt_precision(self.device, params.quality):  # fast: bf16 GPT weights where measured faster
            result = generate(decode_model(self), prompt.spk_cond_emb, text_tokens, emovec, params,
                              generator=generator, spk_latent=prompt.spk_latent)
            codes = result.codes[:, : result.code_len]
            trace(f"{prefix}codes_raw", result.codes), trace(f"{prefix}codes", codes)
            if result.code_len == 0:
                return None
            latent = self.gpt.forward_latent(prompt.spk_latent, text_tokens, codes, emovec).float()
        trace(f"{prefix}latent", latent)
        s_infer = self.codec.vq2emb(codes.unsqueeze(1)).transpose(1, 2) + self.s2mel.gpt_layer(latent)
        trace(f"{prefix}S_infer", s_infer)
        return s_infer

    def mel_frames(self, s_len: int, duration_factor: float = 1.0) -> int:
        """Mel frames for S_infer of s_len frames: n codes x 1.72 x duration_factor, truncated."""
        return int(mel_frames_for_codes(torch.tensor([s_len]), duration_factor)[0])

    @torch.no_grad()
    def segment_audio(self, prompt: VoicePrompt, s_infer: torch.Tensor, frames: int, params: GenerationParams,
                      generator: torch.Generator | None = None, z: torch.Tensor | None = None, trace=_no_trace,
                      prefix: str = "") -> torch.Tensor:
        """S_infer [1, n, 1024] regulated to `frames` mel frames -> float waveform [frames x hop]."""
        target_len = torch.tensor([frames], device=self.device)
        trace(f"{prefix}target_len", target_len)
        cond = self.s2mel.length_regulator(s_infer, target_len)[0]
        trace(f"{prefix}S_infer", s_infer), trace(f"{prefix}target_len", target_len), trace(f"{prefix}cond", cond)
        return self._render(prompt, cond, params, generator, z, trace, prefix)

    def _render(self, prompt: VoicePrompt, cond: torch.Tensor, params: GenerationParams, generator: torch.Generator | None,
                z: torch.Tensor | None, trace=_no_trace, prefix: str = "") -> torch.Tensor:
        """Length-regulated condition [1, T, C] -> float waveform [N] (DiT/CFM after the voice
        prompt, then BigVGAN), scaled to ±32767."""
        dev = self.device
        ref_mel, prompt_condition, steps = prompt.ref_mel, prompt.prompt_condition, CFM_STEPS
        if params.quality == "fast":  # balanced + fewer steps and a shorter prompt
            P, keep = ref_mel.size(-1), min(ref_mel.size(-1), FAST_PROMPT_FRAMES)
            if z is None:
                # Exact mode's noise draw, so the new frames start from the same noise in both
                # modes (the prompt frames' noise is never used): fast approximates the same sample.
                z = torch.randn(1, ref_mel.size(1), P + cond.size(1), generator=generator, device=dev, dtype=cond.dtype)
            z = torch.cat([z[..., :keep], z[..., P:]], dim=-1)  # [1, M, keep + target_len]
            ref_mel, prompt_condition = ref_mel[..., :keep], prompt_condition[:, :keep]
            steps = FAST_CFM_STEPS
        mu = torch.cat([prompt_condition, cond], dim=1)  # [1, P + target_len, C]
        with decoder_precision(dev, params.quality):  # balanced/fast: bf16 where the hardware has it
            out = self.s2mel.cfm.inference(mu, torch.tensor([mu.size(1)], device=dev), ref_mel, prompt.style,
                                           n_timesteps=steps, cfg_rate=CFG_RATE, z=z, generator=generator,
                                           prompt_velocity=False).float()
        mel = out[:, :, ref_mel.size(-1):]
        trace(f"{prefix}cfm_out", out), trace(f"{prefix}mel", mel)
        with decoder_precision(dev, params.quality):  # a block of its own: the DiT's bf16 copies are gone
            wav = self.bigvgan(mel)[0, 0].float()
        return torch.clamp(32767 * wav, -32767, 32767).cpu()

    def synthesize_tokens(self, prompt: VoicePrompt, emovec: torch.Tensor, segments: list[torch.Tensor],
                          params: GenerationParams, generator: torch.Generator | None = None,
                          noises: list[torch.Tensor] | None = None, trace=_no_trace,
                          progress: ProgressFn = no_progress,
                          on_segment: SegmentCallback | None = None, **segment_options) -> tuple[torch.Tensor, list[int]]:
        """Token segments -> (float waveform [N] before the int16 cast, samples per segment).
        segment_options: engine-specific keywords for `synthesize_segment` (2.5: lang, duration_factor).

        on_segment(index, pcm_int16, sample_rate) is called as each segment's audio is final
        (without the silence between segments), in order, so callers can stream it."""
        silence = torch.zeros(int(SAMPLE_RATE * params.interval_silence_ms / 1000))
        pieces, lengths = [], []
        for k, tokens in enumerate(segments):
            progress(0.2 + 0.7 * k / len(segments), f"speech synthesis {k + 1}/{len(segments)}")
            trace(f"seg{k}_text_tokens", tokens)
            trace(f"seg{k}_emovec", emovec)
            wav = self.synthesize_segment(prompt, emovec, tokens, params, generator,
                                          None if noises is None else noises[k], trace, f"seg{k}_", **segment_options)
            if on_segment is not None:
                on_segment(k, wav.to(torch.int16).numpy(), SAMPLE_RATE)
            if pieces:
                pieces.append(silence)
            pieces.append(wav)
            lengths.append(wav.numel())
        return torch.cat(pieces) if pieces else torch.zeros(0), lengths

    def _prepare_text(self, request: EngineRequest, params: GenerationParams) -> tuple[list[str], list[torch.Tensor], dict]:
        """-> (readable text per segment, ids [1, L] int32 per segment, options for synthesize_segment)."""
        pieces = self._segment_pieces(request.text, params.max_text_tokens_per_segment, request.glossary)
        ids = [torch.tensor([self.tokenizer.convert_tokens_to_ids(p)], dtype=torch.int32) for p in pieces]
        return [_pieces_text(p) for p in pieces], ids, {}
