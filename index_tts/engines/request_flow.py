"""How an IndexTTS2-family engine (2.0, 2.5) runs one request, a mixin of the engine class.

_prepare: text segments, the voice prompt and the emotion vector. Then either
- synthesize: segment by segment, codes then audio, as upstream (the first segment can stream
  while the next is drawn); or
- plan / finish (engines.base.TimedEngine): every segment's codes first, then the audio at one
  duration factor, picked from the plan's exact length for a target duration. Drawing all codes
  first keeps them independent of the factor (the flow-matching noise, drawn from the same
  generator, is sized by the mel length).

The engine provides segment_content (codes -> the regulator's input), mel_frames (its length
rule), segment_audio (regulator, DiT/CFM, BigVGAN), synthesize_tokens and _prepare_text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from index_tts.engines.base import EngineOutput, EngineRequest, GenerationParams, NothingToSpeak, ProgressFn, SegmentFn, no_progress
from index_tts.modules.s2mel import MEL_FRAMES_PER_CODE


class RequestFlow:
    def _prepare(self, request: EngineRequest, progress: ProgressFn) -> "_Prepared":
        """Text, voice and emotion of a request: everything before the first segment's codes."""
        # Likewise the mel positions bound the codes (official 1815 = the UI's maximum).
        params = replace(request.generation, max_mel_tokens=min(request.generation.max_mel_tokens, self.gpt.cfg.max_mel_tokens))
        generator = torch.Generator(device=self.device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)

        progress(0.02, "text processing")
        texts, ids, options = self._prepare_text(request, params)
        if not ids:
            raise NothingToSpeak("the text has nothing to speak after normalisation")

        progress(0.05, "processing the voice reference")
        prompt = self.voice_prompt(request.voice, request.voice_sr, request.voice_key, quality=params.quality)
        progress(0.15, "computing the emotion")
        emotion, emotion_model = request.emotion, ""
        if emotion.mode == "text":
            # Read the text here so the result can say which model did it; from then on text
            # mode is vector mode (upstream feeds the weights through the same path).
            weights, emotion_model = self.text_emotion(emotion.text or request.text)
            emotion = replace(emotion, mode="vector", vector=tuple(weights))
        emovec = self.emotion_vector(prompt, emotion, request.text, generator)
        return _Prepared(params, generator, texts, ids, options, prompt, emovec, emotion_model)

    def _output(self, wav: torch.Tensor, texts: list[str], lengths: list[int], params: GenerationParams,
                emotion_model: str) -> EngineOutput:
        pcm = wav.to(torch.int16).numpy()  # truncation toward zero, as upstream's int16 cast
        timings, t = [], 0
        gap = int(self.sample_rate * params.interval_silence_ms / 1000)
        for text, n in zip(texts, lengths):
            timings.append((text, t / self.sample_rate, (t + n) / self.sample_rate))
            t += n + gap
        return EngineOutput(audio=pcm, sample_rate=self.sample_rate, segments=timings, emotion_model=emotion_model)

    def synthesize(self, request: EngineRequest, progress: ProgressFn = no_progress,
                   on_segment: SegmentFn | None = None) -> EngineOutput:
        """on_segment: see `synthesize_tokens`; the joined audio is returned either way."""
        p = self._prepare(request, progress)
        wav, lengths = self.synthesize_tokens(p.prompt, p.emovec, p.ids, p.params, p.generator, progress=progress,
                                              on_segment=on_segment, duration_factor=p.params.duration_factor, **p.options)
        progress(0.95, "finishing")
        return self._output(wav, p.texts, lengths, p.params, p.emotion_model)

    # -- duration control (engines.base.TimedEngine) ------------------------------------------

    @torch.no_grad()
    def plan(self, request: EngineRequest, progress: ProgressFn = no_progress) -> "NeuralPlan":
        """Every segment's codes first (so they do not depend on the tempo), no audio yet."""
        p = self._prepare(request, progress)
        contents = []
        for k, tokens in enumerate(p.ids):
            progress(0.2 + 0.3 * k / len(p.ids), f"codes {k + 1}/{len(p.ids)}")
            contents.append(self.segment_content(p.prompt, p.emovec, tokens, p.params, p.generator, **p.options))
        return NeuralPlan(self, p, contents)

    @torch.no_grad()
    def finish(self, plan: "NeuralPlan", duration_factor: float, progress: ProgressFn = no_progress,
               on_segment: SegmentFn | None = None) -> EngineOutput:
        p = plan.prepared
        silence = torch.zeros(plan.gap)
        pieces, lengths = [], []
        for k, (s_infer, frames) in enumerate(zip(plan.contents, plan.frames(duration_factor))):
            progress(0.5 + 0.45 * k / len(plan.contents), f"speech synthesis {k + 1}/{len(plan.contents)}")
            wav = torch.zeros(0) if s_infer is None else self.segment_audio(p.prompt, s_infer, frames, p.params, p.generator)
            if on_segment is not None:
                on_segment(k, wav.to(torch.int16).numpy(), self.sample_rate)
            pieces += [silence, wav] if pieces else [wav]
            lengths.append(wav.numel())
        progress(0.95, "finishing")
        return self._output(torch.cat(pieces), p.texts, lengths, p.params, p.emotion_model)


@dataclass
class _Prepared:
    params: GenerationParams
    generator: torch.Generator
    texts: list[str]
    ids: list[torch.Tensor]
    options: dict
    prompt: object                # the engine's VoicePrompt
    emovec: torch.Tensor
    emotion_model: str


class NeuralPlan:
    """IndexTTS2's SpeechPlan: the segments' regulator inputs; its length for a factor is the sum
    of the mel frames times the vocoder's hop, plus the silences between segments.

    The frames are apportioned, not truncated per segment as the factor alone would: the total is
    the rounded sum of every segment's exact share (S frames x 1.72 x factor), and the frames left
    over after flooring go to the largest remainders. So the length moves one mel frame (11.6 ms)
    at a time however many segments there are, and a target lands within half a frame."""

    def __init__(self, engine: "RequestFlow", prepared: _Prepared, contents: list[torch.Tensor | None]):
        self.engine, self.prepared, self.contents = engine, prepared, contents
        self.sample_rate = engine.sample_rate
        self.hop = engine.bigvgan.cfg.total_upsample
        self.gap = int(self.sample_rate * prepared.params.interval_silence_ms / 1000)

    def frames(self, duration_factor: float) -> list[int]:
        """Mel frames per segment at `duration_factor` (0 for a segment without codes)."""
        exact = [0.0 if c is None else c.size(1) * MEL_FRAMES_PER_CODE * duration_factor for c in self.contents]
        frames = [0 if c is None else max(math.floor(x), 1) for c, x in zip(self.contents, exact)]  # never an empty segment
        left = round(sum(exact)) - sum(frames)
        for k in sorted(range(len(exact)), key=lambda k: frames[k] - exact[k])[:max(left, 0)]:
            frames[k] += 1
        return frames

    def samples(self, duration_factor: float) -> int:
        return self.hop * sum(self.frames(duration_factor)) + self.gap * (len(self.contents) - 1)
