"""The IndexTTS-2.5 engine: upstream `infer_v2_5.IndexTTS2.infer()`, from our modules.

Pipeline (architecture-spec-2.5.md §2): voice prompt -> emotion vector -> per text segment
[codes (GPT with one speaker row and a language row) -> codec decoder (x2 frames) -> length
regulator (x1.72 x duration_factor) -> DiT/CFM -> BigVGAN] -> join.

It is the 2.0 engine with four parts swapped; everything else (audio features, emotion modes and
matrices, per-voice caches, DiT/CFM with its exact/fast quality, BigVGAN, streaming per segment)
is inherited unchanged:
- text: the 2.5 front end (tiktoken ranks, a language per request, `<word|PRON>`);
- voice: no codec on the prompt; the DiT prompt condition is the regulated w2v features, and the
  GPT's speaker row is `spk_emb_proj(CAMPPlus style)`;
- codes -> `S_infer` by the codec decoder, no latent pass, no gpt_layer;
- the mel length rule with `duration_factor`.

Model directory layout (logical names; shared files are the 2.0 ones):

    config.yaml  gpt.pth  codec.pth  s2mel.pth  feat1.pt  feat2.pt  wav2vec2bert_stats.pt
    multilingual_zh_ja_yue_char_del.tiktoken
    w2v_bert/{config.json, model.safetensors}  campplus_cn_common.bin  bigvgan/{config.json, bigvgan_generator.pt}
"""

from __future__ import annotations

import re

import torch

from index_tts.engines.base import EngineRequest, GenerationParams, ProgressFn, Segment
from index_tts.engines.indextts2 import IndexTTS2Engine, VoicePrompt, _no_trace
from index_tts.model_store import readahead
from index_tts.model_store.layout import ModelFiles
from index_tts.modules.bigvgan import load_bigvgan
from index_tts.modules.campplus import load_campplus
from index_tts.modules.codec25 import codec25_config, load_codec25
from index_tts.modules.length_regulator25 import prompt_condition, target_mel_frames
from index_tts.modules.s2mel import S2Mel, S2MelConfig
from index_tts.modules.unified_voice import UnifiedVoiceConfig
from index_tts.modules.unified_voice25 import generate25, load_gpt25_checkpoint
from index_tts.modules.w2v_bert import W2VBertEncoder
from index_tts.text.frontend25 import LANGUAGE_CHOICES
from index_tts.text.tokenizer25 import RANK_FILE

VERSION = "2.5"
LANGUAGES = ("auto", *LANGUAGE_CHOICES)

_KANA = re.compile(r"[\u3040-\u30ff]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_LATIN = re.compile(r"[A-Za-z]")
_SPANISH = re.compile(r"[ñÑ¿¡áéíóúÁÉÍÓÚ]")


def detect_language(text: str) -> str:
    """"auto": the language code 2.5 gets for `text`, from its script (kana -> ja, ideographs ->
    zh, or zhen with Latin words too, Arabic letters -> ar, Spanish marks -> es, else en)."""
    if _KANA.search(text):
        return "ja"
    if _CJK.search(text):
        return "zhen" if _LATIN.search(text) else "zh"
    if _ARABIC.search(text):
        return "ar"
    return "es" if _SPANISH.search(text) else "en"


class IndexTTS25Engine(IndexTTS2Engine):
    name = "IndexTTS-2.5"
    version = VERSION
    file_set = "2.5"

    def __init__(self, model_dir: ModelFiles, device: str = "cpu"):
        super().__init__(model_dir, device)
        self.version = VERSION  # the released config.yaml reportedly says 2.0 (spec-2.5 §1.2)
        self.front_end = None

    def _load_modules(self, progress: ProgressFn, text: bool = True) -> None:
        d, cfg = self.model_dir, self.cfg
        steps = [
            ("GPT", "gpt", lambda: load_gpt25_checkpoint(d / cfg["gpt_checkpoint"], UnifiedVoiceConfig.from_dict(cfg["gpt"])), cfg["gpt_checkpoint"]),
            ("s2mel", "s2mel", lambda: S2Mel.from_checkpoint(S2MelConfig.from_dict(cfg["s2mel"]), d / cfg["s2mel_checkpoint"], with_gpt_layer=False), cfg["s2mel_checkpoint"]),
            ("w2v-BERT", "w2v", lambda: W2VBertEncoder.from_dir(d / "w2v_bert", d / cfg["w2v_stat"]), "w2v_bert/model.safetensors"),
            ("codec decoder", "codec", lambda: load_codec25(d / "codec.pth", codec25_config(cfg["semantic_codec"])), "codec.pth"),
            ("CAMPPlus", "campplus", lambda: load_campplus(d / "campplus_cn_common.bin"), "campplus_cn_common.bin"),
            ("BigVGAN", "bigvgan", lambda: load_bigvgan(d / "bigvgan"), "bigvgan/bigvgan_generator.pt"),
        ]
        total = len(steps) + 1 + text
        for i, (what, attr, build, weights) in enumerate(steps):
            progress(i / total, f"loading {what}")
            if readahead.wanted(d / weights):
                readahead.read_ahead(d / weights)
            setattr(self, attr, build())
        progress(len(steps) / total, "loading emotion matrices")
        self._load_matrices()
        if text:
            progress((len(steps) + 1) / total, "loading text front end")
            self._load_text()
        self._place_modules(gpu_gpt_dtype=torch.bfloat16)  # as upstream's use_bf16
        progress(1.0, "ready")

    def _load_text(self) -> None:
        from index_tts.text import TextNormalizer
        from index_tts.text.frontend25 import FrontEnd25
        from index_tts.text.tokenizer25 import Tokenizer25

        # As for 2.0, custom pronunciations come with each request (the studio's glossary).
        self.front_end = FrontEnd25(Tokenizer25(self.model_dir / RANK_FILE), TextNormalizer(), self.gpt.cfg.text_positions)

    # -- text ---------------------------------------------------------------------------------

    def language_for(self, text: str, language: str = "auto") -> str:
        language = (language or "auto").lower()
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        return detect_language(text) if language == "auto" else language

    def _front_end(self, text: str, language: str, max_tokens: int, glossary: dict | None = None):
        max_tokens = min(max_tokens, self.gpt.cfg.max_text_tokens)
        return self.front_end.run(text, self.language_for(text, language), max_tokens, glossary)

    def segments(self, text: str, max_tokens: int, language: str = "auto") -> list[Segment]:
        result = self._front_end(text, language, max_tokens)
        return [Segment(s, len(ids) - 1) for s, ids in zip(result.segments, result.segment_ids) if s.strip()]

    def _prepare_text(self, request: EngineRequest, params: GenerationParams):
        result = self._front_end(request.text, request.language, params.max_text_tokens_per_segment, request.glossary)
        kept = [(s, ids) for s, ids in zip(result.segments, result.segment_ids) if s.strip()]
        ids = [torch.tensor([i], dtype=torch.int32) for _, i in kept]
        options = {"lang": result.lang_id}
        return [s.strip() for s, _ in kept], ids, options

    # -- voice --------------------------------------------------------------------------------

    def _speaker_conditions(self, spk_cond_emb: torch.Tensor, ref_mel: torch.Tensor, style: torch.Tensor, trace):
        """2.5: the regulated w2v features themselves (no codec), and one speaker row [1, 1, d]."""
        condition, _ = prompt_condition(self.s2mel.length_regulator, spk_cond_emb, ref_mel.size(-1))
        gpt_dtype = next(self.gpt.parameters()).dtype
        return condition, self.gpt.speaker_latent(style.to(gpt_dtype))

    # -- synthesis ----------------------------------------------------------------------------

    @torch.no_grad()
    def segment_content(self, prompt: VoicePrompt, emovec: torch.Tensor, text_tokens: torch.Tensor,
                        params: GenerationParams, generator: torch.Generator | None = None,
                        trace=_no_trace, prefix: str = "", lang: int = 0) -> torch.Tensor | None:
        """One segment (ids [1, L] ending in the appended 1, language row `lang`) -> S_infer
        [1, 2n, 1024] from the codec decoder (None: no codes)."""
        trace(f"{prefix}lang", torch.tensor([lang]))
        result = generate25(self.gpt, prompt.style, text_tokens.to(self.device), lang, emovec, params, generator=generator)
        trace(f"{prefix}spk_latent", result.spk_latent)
        codes = result.codes[:, : result.code_len]
        trace(f"{prefix}codes_raw", result.codes), trace(f"{prefix}codes", codes)
        if result.code_len == 0:
            return None
        s_infer = self.codec.decode(codes)                     # [1, 2n, 1024], fp32
        trace(f"{prefix}S_infer", s_infer)
        return s_infer

    def mel_frames(self, s_len: int, duration_factor: float = 1.0) -> int:
        return target_mel_frames(s_len, duration_factor)
