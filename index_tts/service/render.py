"""Rendering: a request's text, split at its inline tags, spoken part by part and joined into
int16 audio at OUTPUT_SAMPLE_RATE with its timeline. Nothing is written here (outputs.py does)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Callable

import numpy as np
import soxr

from index_tts.emotion import EMOTIONS, EmotionSpec
from index_tts.engines.base import (Engine, EngineRequest, GenerationParams, NothingToSpeak, ProgressFn, UnusableReference,
                                    no_progress)
from index_tts.engines.timing import OutOfReach, fit_factor, pick_factor
from index_tts.service.checks import LINE_BREAKS, bad_character, check_number
from index_tts.service.errors import ValidationError, rethrow_named
from index_tts.service.models import check_language
from index_tts.service.requests import PlannedSegment, Rendered, SynthesisRequest, TimedSegment
from index_tts.text import tags

OUTPUT_SAMPLE_RATE = 22050


def describe_emotion(spec: EmotionSpec) -> str:
    """A short label of what the engine is told, e.g. "sad 0.80 (weight 0.60)" or "same as voice"."""
    if spec.mode == "vector" and spec.vector:
        parts = [f"{name} {v:.2f}" for name, v in sorted(zip(EMOTIONS, spec.vector), key=lambda kv: -kv[1]) if v > 0][:3]
        return f"{' + '.join(parts) or 'neutral'} (weight {spec.weight:.2f})"
    if spec.mode == "text":
        return f"text: {spec.text[:40]}" if spec.text else "text: read from the words"
    return {"same_as_voice": "same as voice", "audio": "emotion reference"}.get(spec.mode, spec.mode)


def tag_emotion(tag: tags.EmotionTag) -> EmotionSpec:
    return EmotionSpec(mode="vector", vector=tag.vector, weight=tag.weight)


def parse_tags(text: str) -> list[tags.Speech | tags.Pause]:
    try:
        return tags.parse(text)
    except tags.TagError as e:
        raise ValidationError("text", str(e)) from e


class Rendering:
    """Part of the Synthesizer (a mixin): turning a request into audio, nothing written.
    Uses the Synthesizer's _slot(), _engine_for(), glossary and limits; a model slot's `runs` bounds
    how many requests its engine renders at once."""

    def preview_segments(self, text: str, max_tokens: int, model: str | None = None,
                         language: str = "auto") -> list[PlannedSegment]:
        """How `model`'s engine (None: the default) will split `text` in `language`, inline tags
        applied (cheap; no synthesis). A malformed tag raises ValidationError("text") pointing at
        it. A model loaded on demand starts loading here and answers NotReady until it is ready."""
        slot = self._slot(model)
        language = check_language(language)
        slot.start()
        engine = slot.ready_engine()
        if not isinstance(text, str) or not text.strip():
            return []
        problem = bad_character(text, LINE_BREAKS)
        if problem:
            raise ValidationError("text", f"contains {problem}")
        lo, hi = GenerationParams.RANGES["max_text_tokens_per_segment"]
        max_tokens = int(check_number(max_tokens, "generation.max_text_tokens_per_segment", -2**53, 2**53))
        max_tokens = min(max(max_tokens, lo), hi)
        rows: list[PlannedSegment] = []
        for item in parse_tags(text.strip()[: self.limits.max_text_chars]):
            if isinstance(item, tags.Pause):
                if rows:
                    rows[-1] = replace(rows[-1], pause_after_ms=rows[-1].pause_after_ms + item.ms)
                continue
            label = describe_emotion(tag_emotion(item.emotion)) if item.emotion else ""
            by_language = {"language": language} if _takes(engine.segments, "language") else {}
            rows += [PlannedSegment(seg.text, seg.n_tokens, label) for seg in engine.segments(item.text, max_tokens, **by_language)]
        return rows

    def render(self, request: SynthesisRequest, progress: ProgressFn = no_progress,
               on_audio: Callable[[np.ndarray], None] | None = None,
               check: Callable[[], None] = lambda: None) -> tuple[Rendered, EngineRequest]:
        """Validate and speak `request` without writing anything; returns the audio and the
        validated engine request (its voice and emotion as the engine saw them).

        Inline tags split the text into parts; the engine is called once per part (its voice
        caches make that cheap) and the parts are joined with the tag pauses, or with the
        segment silence where two parts meet without one. on_audio as in `synthesize`; `check`
        raises to abandon the request (cancelled, too late) while it waits for the engine.
        """
        progress(0.0, "checking the request")
        base = request.validate(self.limits, self.glossary.load() if request.use_glossary is True else None)
        engine = self._engine_for(request.model, check, progress)
        items = parse_tags(base.text)
        gap = _silence(base.generation.interval_silence_ms)
        parts = [item for item in items if isinstance(item, tags.Speech)]

        pieces: list[np.ndarray] = []
        timeline: list[TimedSegment] = []
        length = 0                       # samples written so far
        pending = 0                      # silence (samples) owed before the next audio
        after_speech = False             # the last item was speech: parts meeting get the segment gap
        emotion_models: list[str] = []
        done = 0

        def emit(chunk: np.ndarray) -> None:
            nonlocal length
            pieces.append(chunk)
            length += len(chunk)
            if on_audio is not None and len(chunk):
                on_audio(chunk)

        progress(0.02, "waiting for the engine")
        runs = self._slot(request.model).runs
        while not runs.acquire(timeout=0.1):
            check()  # a request cancelled (or late) while queued leaves the queue
        try:
            plans, factor = {}, base.generation.duration_factor
            if request.duration is not None or request.max_duration is not None:  # the content, then one tempo
                plans, factor = _plan_to_fit(engine, items, base, request, gap.size, progress)
            for position, item in enumerate(items):
                if isinstance(item, tags.Pause):
                    pending += _silence(item.ms).size
                    after_speech = False
                    continue
                if plans and position not in plans:
                    continue   # nothing to speak in this part (see _plan_to_fit)
                emotion = tag_emotion(item.emotion) if item.emotion else base.emotion
                part_request = _part_request(base, item)
                lead = np.zeros(pending + (gap.size if after_speech else 0), np.int16)
                first, share = (0.5, 0.43) if plans else (0.03, 0.9)  # with plans, planning took the first half
                span = (first + share * done / len(parts), share / len(parts))
                part_progress = (lambda f, stage, s=span: progress(s[0] + s[1] * min(max(f, 0.0), 1.0), stage))
                streamed: list[int] = []
                part_start = length

                def on_segment(index: int, pcm: np.ndarray, sample_rate: int, lead=lead) -> None:
                    emit(np.concatenate([lead if index == 0 else gap, _to_output_pcm(pcm, sample_rate)]))
                    streamed.append(index)

                try:
                    # on_segment only when streaming: engines without streaming keep working.
                    extra = {"on_segment": on_segment} if on_audio is not None and _takes(engine.synthesize, "on_segment") else {}
                    if plans:
                        output = engine.finish(plans[position], factor, part_progress, **extra)
                    else:
                        output = engine.synthesize(part_request, part_progress, **extra)
                except NothingToSpeak:
                    continue   # e.g. a part that is only punctuation; the whole text is checked below
                except UnusableReference as e:
                    raise ValidationError(e.field, str(e)) from e
                finally:
                    done += 1
                offset = (part_start + lead.size) / OUTPUT_SAMPLE_RATE
                if not streamed:
                    emit(np.concatenate([lead, _to_output_pcm(output.audio, output.sample_rate)]))
                label = describe_emotion(emotion)
                timeline += [TimedSegment(text, offset + s, offset + e, label) for text, s, e in output.segments]
                if output.emotion_model:
                    emotion_models.append(output.emotion_model)
                pending, after_speech = 0, True
            if not timeline:
                raise ValidationError("text", "has nothing to speak (no words or characters)")
            if pending:
                emit(np.zeros(pending, np.int16))   # a pause tag at the very end
        finally:
            runs.release()
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        return Rendered(audio, timeline, "; ".join(dict.fromkeys(emotion_models)), engine=engine.name,
                        duration_factor=factor), base


def _part_request(base: EngineRequest, item: tags.Speech) -> EngineRequest:
    emotion = tag_emotion(item.emotion) if item.emotion else base.emotion
    rethrow_named(emotion.validate, "emotion")
    return replace(base, text=item.text, emotion=emotion)


def _plan_to_fit(engine: Engine, items: list, base: EngineRequest, request: SynthesisRequest, gap: int,
                 progress: ProgressFn) -> tuple[dict, float]:
    """Plan every speech part (engines.base.TimedEngine) and pick the one duration factor that
    makes the whole, its fixed pauses and silences included, last `request.duration` (or at most
    `request.max_duration`). -> ({item index: plan}, factor). ValidationError("duration") when
    a duration is out of reach."""
    if not hasattr(engine, "plan"):
        raise ValidationError("duration", f"the {getattr(engine, 'name', 'current')} engine cannot set a duration")
    plans, fixed, after_speech = {}, 0, False
    speech = [i for i, item in enumerate(items) if isinstance(item, tags.Speech)]
    for i, item in enumerate(items):
        if isinstance(item, tags.Pause):
            fixed += _silence(item.ms).size
            after_speech = False
            continue
        step = (0.03 + 0.45 * len(plans) / len(speech), 0.45 / len(speech))
        try:
            plans[i] = engine.plan(_part_request(base, item), lambda f, stage, s=step: progress(s[0] + s[1] * min(max(f, 0.0), 1.0), stage))
        except NothingToSpeak:
            continue
        except UnusableReference as e:
            raise ValidationError(e.field, str(e)) from e
        fixed += gap if after_speech else 0
        after_speech = True
    if not plans:
        raise ValidationError("text", "has nothing to speak (no words or characters)")

    def length(factor: float) -> int:
        return fixed + sum(round(p.samples(factor) * OUTPUT_SAMPLE_RATE / p.sample_rate) for p in plans.values())

    if request.duration is None:
        return plans, fit_factor(length, round(request.max_duration * OUTPUT_SAMPLE_RATE), base.generation.duration_factor)
    try:
        return plans, pick_factor(length, round(request.duration * OUTPUT_SAMPLE_RATE), OUTPUT_SAMPLE_RATE)
    except OutOfReach as e:
        raise ValidationError("duration", str(e)) from e



def checking(progress: ProgressFn, check: Callable[[], None]) -> ProgressFn:
    """`progress` that first runs a job's check(): engines report progress often, so checking
    there bounds how long abandoned work runs."""
    def checked(fraction: float, stage: str) -> None:
        check()
        progress(fraction, stage)
    return checked


def _silence(ms: float) -> np.ndarray:
    return np.zeros(int(OUTPUT_SAMPLE_RATE * ms / 1000), np.int16)


def title_of(text: str) -> str:
    try:
        words = tags.strip_tags(text)
    except tags.TagError:
        words = text
    return " ".join(words.split())[:80]


def _takes(method, parameter: str) -> bool:
    """Whether an engine method has an optional parameter: `synthesize(on_segment=)` (an engine
    that cannot stream gets the whole audio as one chunk), `segments(language=)` (IndexTTS-2.5)."""
    try:
        return parameter in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _to_output_pcm(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Engine audio (int16 or float, any rate) -> int16 mono at OUTPUT_SAMPLE_RATE."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        audio = audio.reshape(-1)
    samples = audio.astype(np.float32) / 32768.0 if audio.dtype.kind == "i" else audio.astype(np.float32)
    if sample_rate != OUTPUT_SAMPLE_RATE and samples.size:
        samples = soxr.resample(samples, sample_rate, OUTPUT_SAMPLE_RATE)
    return (np.clip(samples, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)

