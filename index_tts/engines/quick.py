"""The quick voice: an offline engine that needs no model weights and no GPU.

espeak-ng speaks each segment with neutral prosody; WORLD analyses it; the pitch and spectral
envelope are moved toward the reference voice; emotion rules edit pitch, tempo, voice quality
and loudness; WORLD resynthesises. See docs/quick-voice.md.

Emotion modes:
  same_as_voice  neutral: the speaker's own pitch level and range, espeak's tempo.
  vector         the 8 weights blend the rule rows (`prosody.blend`), scaled by the weight.
  text           `text.emotion_lexicon.text_to_emotion` of the emotion text (or of the text to speak), then
                 as vector.
  audio          the emotion reference is measured like the voice reference (pitch level and
                 range, speaking rate, loudness) and its departure from the *speaker's* values
                 becomes the rule, scaled by the weight. Voice quality is not copied.
`use_random` (vector and text modes) perturbs the weights by up to ±0.15 each, drawn from the seed.

Custom pronunciations (`request.glossary`) are substituted into each segment before espeak reads
it: the zh reading where espeak reads the segment with its Mandarin voice, else the en reading.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from index_tts.engines.base import (EngineOutput, EngineRequest, NothingToSpeak, ProgressFn, Segment, SegmentFn,
                                    UnusableReference, no_progress)
from index_tts.emotion import EMOTIONS, EmotionSpec
from index_tts.quickvoice import espeak, prosody, voice
from index_tts.quickvoice.prosody import ProsodyRule
from index_tts.text.emotion_lexicon import text_to_emotion

SAMPLE_RATE = espeak.SAMPLE_RATE  # 22050

# A token is a run of Latin letters/digits (a word or number) or one CJK character.
_TOKEN = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)*|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"[。！？!?；;…\n]+|\.(?=\s|$)")
_CLAUSE_END = re.compile(r"[，,、：:]+")

# Bounds for rules measured from an emotion reference (audio mode): the table's extremes.
_AUDIO_LIMITS = {"pitch_st": (-6.0, 6.0), "range_scale": (0.6, 1.7), "rate": (0.7, 1.3), "gain_db": (-6.0, 6.0)}


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


class QuickVoiceEngine:
    """Offline rule-based engine implementing the `Engine` contract.

    Segmentation: text is split into sentences at sentence punctuation (。！？!?；;… newline, and a
    period followed by a space), then consecutive sentences are merged while the segment stays
    within `max_text_tokens_per_segment` tokens, where a token is a word (a run of Latin letters
    or digits) or a single CJK character. A longer sentence is split at commas, and a clause
    that is still too long is cut every `max` tokens.
    """

    name = "Quick voice (offline)"
    version = "1.0"
    device = "cpu"

    def __init__(self) -> None:
        self._profiles: OrderedDict[str, voice.VoiceProfile] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, progress: ProgressFn = no_progress) -> "QuickVoiceEngine":
        """Nothing to load: espeak opens lazily on first use (~0.1 s; Mandarin adds ~0.4 s)."""
        progress(1.0, "ready")
        return cls()

    # ------------------------------------------------------------------ segmentation

    def segments(self, text: str, max_tokens: int) -> list[Segment]:
        max_tokens = max(int(max_tokens), 1)
        pieces: list[str] = []
        for sentence in _split_keep(text, _SENTENCE_END):
            if count_tokens(sentence) <= max_tokens:
                pieces.append(sentence)
                continue
            for clause in _split_keep(sentence, _CLAUSE_END):
                pieces.extend(_hard_split(clause, max_tokens))
        segments: list[Segment] = []
        current, n = "", 0
        for piece in pieces:
            k = count_tokens(piece)
            if k == 0:  # stray punctuation: keep it with what precedes
                current += piece
                continue
            if current and n + k > max_tokens:
                segments.append(Segment(current.strip(), n))
                current, n = "", 0
            current, n = current + piece, n + k
        if n:
            segments.append(Segment(current.strip(), n))
        return segments

    # ------------------------------------------------------------------ synthesis

    def synthesize(self, request: EngineRequest, progress: ProgressFn = no_progress,
                   on_segment: SegmentFn | None = None) -> EngineOutput:
        return self.finish(self.plan(request, progress), request.generation.duration_factor, progress, on_segment)

    def plan(self, request: EngineRequest, progress: ProgressFn = no_progress) -> "QuickPlan":
        """Phonemes, voice and emotion applied, as WORLD features; the tempo comes in finish."""
        gen = request.generation
        emotion = request.emotion
        gen.validate()
        emotion.validate()
        seed = gen.seed if gen.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
        rng = np.random.default_rng(seed)

        progress(0.0, "segmenting")
        segs = self.segments(request.text, gen.max_text_tokens_per_segment)
        if not segs:
            raise NothingToSpeak("the text has nothing to speak (no words or characters)")

        try:
            speaker = self._profile(request.voice, request.voice_sr, request.voice_key)
        except voice.VoiceAnalysisError as e:
            raise UnusableReference("voice", str(e)) from e

        feats, wavs = [], []
        for i, seg in enumerate(segs):
            progress(0.05 + 0.45 * i / len(segs), f"speaking {i + 1}/{len(segs)}")
            wav = espeak.speak(apply_glossary(seg.text, request.glossary))
            if wav.size == 0:
                raise ValueError(f"espeak produced no audio for segment {i + 1}: {seg.text!r}")
            wavs.append(wav)
            feats.append(prosody.analyse(wav, SAMPLE_RATE))

        progress(0.55, "adapting voice")
        try:
            neutral = voice.profile_from_features(feats, wavs, min_voiced_s=0.0)
        except voice.VoiceAnalysisError:
            neutral = None  # e.g. "shh": nothing voiced to move; the envelope stays espeak's
        if neutral is not None:
            feats, _alpha = voice.adapt(feats, neutral, speaker)

        progress(0.7, "applying emotion")
        rule = self._rule(emotion, request.text, speaker, rng)
        feats = [prosody.apply(f, rule, speaker.f0_median_hz, rng) for f in feats]
        emotion_model = "keyword lexicon (the quick voice has no emotion model)" if emotion.mode == "text" else ""
        return QuickPlan(feats, segs, gen.interval_silence_ms, rule.gain_db, emotion_model)

    def finish(self, plan: "QuickPlan", duration_factor: float, progress: ProgressFn = no_progress,
               on_segment: SegmentFn | None = None) -> EngineOutput:
        """The planned speech at `duration_factor` (> 1 slower), through WORLD's frame sequence."""
        feats = plan.feats if duration_factor == 1.0 else [prosody.time_scale(f, 1 / duration_factor) for f in plan.feats]
        audio, spans = self._join(feats, plan.segs, plan.silence_ms)
        audio = prosody.set_loudness(audio, plan.gain_db)
        progress(1.0, "done")
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        if on_segment is not None:
            # Loudness is set over the whole utterance, so segments are final only now; the quick
            # voice is several times faster than real time, so streaming it early gains little.
            for i, (_, start, end) in enumerate(spans):
                on_segment(i, pcm[round(start * SAMPLE_RATE): round(end * SAMPLE_RATE)], SAMPLE_RATE)
        return EngineOutput(audio=pcm, sample_rate=SAMPLE_RATE, segments=spans, emotion_model=plan.emotion_model)

    def _profile(self, wav: np.ndarray, sr: int, key: str) -> voice.VoiceProfile:
        with self._lock:
            if key and key in self._profiles:
                self._profiles.move_to_end(key)
                return self._profiles[key]
        profile = voice.analyse_voice(wav, sr)
        with self._lock:
            if key:
                self._profiles[key] = profile
                while len(self._profiles) > 32:
                    self._profiles.popitem(last=False)
        return profile

    def _rule(self, emotion: EmotionSpec, text: str, speaker: voice.VoiceProfile, rng: np.random.Generator) -> ProsodyRule:
        if emotion.mode == "same_as_voice":
            return prosody.NEUTRAL
        if emotion.mode == "audio":
            sr = emotion.audio_sr or SAMPLE_RATE
            try:
                measured = voice.analyse_voice(np.asarray(emotion.audio, dtype=np.float32), sr)
            except voice.VoiceAnalysisError as e:
                raise UnusableReference("emotion.audio", str(e)) from e
            return prosody.scale(rule_from_reference(measured, speaker), emotion.weight)
        if emotion.mode == "vector":
            weights = tuple(emotion.vector)
        else:  # text
            weights = text_to_emotion(emotion.text.strip() or text)
        if emotion.use_random:
            weights = tuple(np.clip(np.asarray(weights) + rng.uniform(-0.15, 0.15, len(EMOTIONS)), 0.0, 1.2))
        return prosody.blend(weights, emotion.weight)

    @staticmethod
    def _join(feats, segs, silence_ms: int) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
        gap = np.zeros(int(SAMPLE_RATE * silence_ms / 1000), np.float32)
        parts, spans, t = [], [], 0
        for i, (f, seg) in enumerate(zip(feats, segs)):
            if i:
                parts.append(gap)
                t += len(gap)
            y = prosody.resynthesize(f)
            parts.append(y)
            spans.append((seg.text, t / SAMPLE_RATE, (t + len(y)) / SAMPLE_RATE))
            t += len(y)
        return np.concatenate(parts), spans


@dataclass
class QuickPlan:
    """The quick voice's SpeechPlan: each segment's WORLD features before the tempo."""

    feats: list[prosody.WorldFeatures]
    segs: list[Segment]
    silence_ms: int
    gain_db: float
    emotion_model: str
    sample_rate: int = SAMPLE_RATE

    def samples(self, duration_factor: float) -> int:
        frames = [len(f.f0) if duration_factor == 1.0 else prosody.scaled_frames(len(f.f0), 1 / duration_factor)
                  for f in self.feats]
        gap = int(SAMPLE_RATE * self.silence_ms / 1000)
        return sum(prosody.synthesized_samples(n, SAMPLE_RATE) for n in frames) + gap * (len(frames) - 1)


def rule_from_reference(emotion_ref: voice.VoiceProfile, speaker: voice.VoiceProfile) -> ProsodyRule:
    """The emotion reference's prosody relative to the speaker's, as a rule (audio mode)."""
    values = {
        "pitch_st": 12 * math.log2(emotion_ref.f0_median_hz / speaker.f0_median_hz),
        "range_scale": emotion_ref.log_f0_std / max(speaker.log_f0_std, 1e-3),
        "rate": emotion_ref.syllable_rate / speaker.syllable_rate if speaker.syllable_rate > 0 and emotion_ref.syllable_rate > 0 else 1.0,
        "gain_db": emotion_ref.level_db - speaker.level_db,
    }
    return ProsodyRule(**{k: float(np.clip(v, *_AUDIO_LIMITS[k])) for k, v in values.items()})


def apply_glossary(text: str, glossary: dict[str, dict[str, str]]) -> str:
    """Replace each glossary term in `text` by its reading for the language espeak will read
    `text` in; one case-insensitive pass, longest term first, so a reading is never re-read
    as another term. A term without a reading in that language stays as written."""
    lang = "zh" if espeak.voice_for(text) == espeak.MANDARIN else "en"
    readings = {}
    for term, value in (glossary or {}).items():
        reading = value.get(lang) if isinstance(value, dict) else value
        if term and reading:
            readings[term.casefold()] = reading
    if not readings:
        return text
    pattern = re.compile("|".join(re.escape(t) for t in sorted(readings, key=len, reverse=True)), re.IGNORECASE)
    return pattern.sub(lambda m: readings.get(m.group().casefold(), m.group()), text)


def _split_keep(text: str, boundary: re.Pattern) -> list[str]:
    """Split after each boundary match, keeping the punctuation with the left part."""
    out, start = [], 0
    for m in boundary.finditer(text):
        out.append(text[start: m.end()])
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return [p for p in out if p.strip()]


def _hard_split(text: str, max_tokens: int) -> list[str]:
    """Cut `text` before every max_tokens-th token."""
    starts = [m.start() for m in _TOKEN.finditer(text)]
    cuts = [0] + starts[max_tokens::max_tokens] + [len(text)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]
