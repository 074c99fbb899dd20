"""Emotion audition: one line spoken in several emotions, to hear them side by side and pick one.

The takes are rendered in turn as ONE admitted job (one place in the queue however many takes),
with one seed for all of them, so the emotion is the only difference. `audition()` is a
generator: each take is handed over as soon as it is done, its WAV already written under
data/tmp/auditions/ (the newest KEEP_AUDITIONS auditions are kept; an audition is for listening,
the pick is kept as an emotion).
Cancelling stops it between or inside takes: the takes handed over so far stay playable, and the
generator then raises Cancelled.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from index_tts.emotion import EmotionSpec, builtin_presets, preset_spec
from index_tts.encoding import audio_format, encode
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.fileio import atomic_write_bytes
from index_tts.service.checks import check_text
from index_tts.service.clips import make_clip, render_clip
from index_tts.service.errors import ValidationError, rethrow_named
from index_tts.service.render import OUTPUT_SAMPLE_RATE, checking

if TYPE_CHECKING:
    from index_tts.service.synthesizer import Synthesizer

MAX_TAKES = 16
KEEP_AUDITIONS = 4          # audition folders kept; older ones go when a new one starts
AUDITIONS_FOLDER = "auditions"   # under the data folder's tmp/


@dataclass(frozen=True)
class Take:
    index: int              # its place among the emotions asked for, from 0
    label: str              # what the caller called the emotion
    emotion: EmotionSpec
    path: Path              # the take as a WAV (22050 Hz 16-bit mono)
    duration_s: float
    seed: int               # shared by every take of the audition


def pure_presets() -> list[tuple[str, EmotionSpec]]:
    """The built-in presets that are one emotion each (the eight of EMOTIONS), as (id, spec)."""
    return [(p["id"], preset_spec(p["id"])) for p in builtin_presets() if sum(1 for v in p["values"] if v) == 1]


def audition(synth: Synthesizer, text: str, voice: str | os.PathLike,
             emotions: list[tuple[str, EmotionSpec]] | None = None, *, generation: GenerationParams = GenerationParams(),
             progress: ProgressFn = no_progress, cancel: threading.Event | None = None) -> Iterator[Take]:
    """Check everything now (ValidationError naming the field), then return the generator of
    takes: `emotions` (label, spec) pairs in order, the pure presets when None. The job is
    admitted at the first next() (Busy when the queue is full). Each take's timeout is the
    request timeout."""
    check_text(text, "text", synth.limits.max_text_chars, required=True)
    if not isinstance(voice, (str, os.PathLike)) or not Path(voice).is_file():
        raise ValidationError("voice", "a reference voice file is required")
    emotions = pure_presets() if emotions is None else list(emotions)
    if not 1 <= len(emotions) <= MAX_TAKES:
        raise ValidationError("emotions", f"choose from 1 to {MAX_TAKES} emotions, got {len(emotions)}")
    for n, pair in enumerate(emotions):
        label, spec = pair if isinstance(pair, tuple) and len(pair) == 2 else (None, None)
        if not isinstance(label, str) or not isinstance(spec, EmotionSpec) or spec.mode == "audio":
            raise ValidationError(f"emotions.{n}", "must be a (label, preset, slider or text emotion) pair")
        rethrow_named(spec.validate, "emotion")
    if not isinstance(generation, GenerationParams):
        raise ValidationError("generation", f"must be GenerationParams, got {type(generation).__name__}")
    rethrow_named(generation.validate, "generation")
    seed = generation.seed if generation.seed is not None else secrets.randbelow(2**32)
    return _takes(synth, text, voice, emotions, generation, seed, progress, cancel)


def _takes(synth: Synthesizer, text: str, voice, emotions, generation, seed, progress, cancel) -> Iterator[Take]:
    folder = _new_folder(synth)
    fmt = audio_format("wav")
    with synth.job(cancel, timeout_s=synth.limits.request_timeout_s * len(emotions)) as check:
        for index, (label, emotion) in enumerate(emotions):
            check()
            share = (index / len(emotions), 1 / len(emotions))
            clip = make_clip(synth, text, voice, seed=seed, emotion=emotion, generation=generation)
            audio = render_clip(synth, clip, checking(lambda f, stage, s=share: progress(
                s[0] + s[1] * f, f"take {index + 1}/{len(emotions)} ({label}): {stage}"), check), check)
            path = folder / f"{index + 1:02d}_{_file_part(label)}.wav"
            atomic_write_bytes(path, encode(audio, OUTPUT_SAMPLE_RATE, fmt))
            yield Take(index, label, emotion, path, len(audio) / OUTPUT_SAMPLE_RATE, seed)
    progress(1.0, "done")


def _new_folder(synth: Synthesizer) -> Path:
    root = synth.upload_dir / AUDITIONS_FOLDER
    folder = root / f"{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    for old in sorted(p for p in root.iterdir() if p.is_dir())[:-KEEP_AUDITIONS]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _file_part(label: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]+", "_", label)[:40].strip("_") or "take"

