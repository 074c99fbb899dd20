"""Clips: one stretch of speech, described completely, rendered once and kept.

Dubbing cues, dialogue lines and the segments of a long-form project are all lists of clips.
A clip is a frozen description (text, voice, emotion, generation settings, seed, engine) and
its key is a hash of all of it, the voice by its audio's content hash, not its path. A ClipStore
keeps each rendered clip under its key, written atomically, so that:
- resuming after a crash or a restart renders only the keys not yet stored;
- regenerating one item (a new seed or emotion) changes that item's key only;
- a re-render after an edit redoes only the clips whose text or settings changed.

A runner renders the clips a store lacks: LocalRunner in this process, through the service's
one engine; the Ray runner (scale-out) on actors that each hold their own service. Both call
render_clip, so a clip sounds the same wherever it is rendered.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

import numpy as np
import soundfile as sf

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.fileio import atomic_write_bytes
from index_tts.service.render import OUTPUT_SAMPLE_RATE, checking
from index_tts.service.requests import SynthesisRequest

if TYPE_CHECKING:
    from index_tts.service.synthesizer import Synthesizer

Check = Callable[[], None]


@dataclass(frozen=True)
class Clip:
    text: str               # may hold inline tags
    voice_path: str         # where the reference audio is in the process that renders it
    voice_sha: str          # sha256 of the reference audio file: the voice's identity
    emotion: dict           # EmotionSpec.to_record()
    generation: dict        # GenerationParams fields, the seed among them (never None)
    engine: str             # "<name> <version>" of the engine meant to render it
    # At most this many seconds (SynthesisRequest.max_duration; a dubbing cue's slot in `fit`
    # mode). Unset fields stay out of the key, so clips made before a field existed keep theirs.
    max_duration: float | None = None

    @property
    def key(self) -> str:
        identity = {k: v for k, v in asdict(self).items()
                    if k != "voice_path" and not (k in _UNSET_LEAVES_KEY and v is None)}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]

    def request(self) -> SynthesisRequest:
        return SynthesisRequest(text=self.text, voice=self.voice_path, emotion=EmotionSpec.from_record(self.emotion),
                                generation=GenerationParams(**self.generation), output_format="wav",
                                max_duration=self.max_duration)


_UNSET_LEAVES_KEY = ("max_duration",)


def file_sha(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_clip(synth: Synthesizer, text: str, voice_path: str | os.PathLike, *, seed: int,
              emotion: EmotionSpec = EmotionSpec(), generation: GenerationParams = GenerationParams(),
              max_duration: float | None = None) -> Clip:
    """A clip for the service's engine (which must be ready: NotReady otherwise)."""
    engine = synth._ready_engine()
    return Clip(text=text, voice_path=str(voice_path), voice_sha=file_sha(voice_path), emotion=emotion.to_record(),
                generation=asdict(replace(generation, seed=int(seed))),
                engine=f"{engine.name} {getattr(engine, 'version', '')}".strip(), max_duration=max_duration)


def render_clip(synth: Synthesizer, clip: Clip, progress: ProgressFn = no_progress, check: Check = lambda: None) -> np.ndarray:
    """The clip's audio: int16 mono at OUTPUT_SAMPLE_RATE. Raises what synth.render raises."""
    return render_clip_info(synth, clip, progress, check)[0]


def render_clip_info(synth: Synthesizer, clip: Clip, progress: ProgressFn = no_progress,
                     check: Check = lambda: None) -> tuple[np.ndarray, dict]:
    """render_clip, and what the render decided: {"duration_factor": the tempo it picked}."""
    rendered, _ = synth.render(clip.request(), progress, check=check)
    return rendered.audio, {"duration_factor": rendered.duration_factor}


class ClipStore:
    """A folder of rendered clips, `<key>.wav` each, written atomically (a half-written clip never
    counts as done)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"bad clip key {key!r}")
        return self.folder / f"{key}.wav"

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> np.ndarray:
        audio, rate = sf.read(self._path(key), dtype="int16")
        if rate != OUTPUT_SAMPLE_RATE:
            raise ValueError(f"clip {key} is at {rate} Hz, expected {OUTPUT_SAMPLE_RATE}")
        return audio

    def put(self, key: str, audio: np.ndarray) -> None:
        buffer = io.BytesIO()
        sf.write(buffer, np.asarray(audio, np.int16), OUTPUT_SAMPLE_RATE, format="WAV", subtype="PCM_16")
        atomic_write_bytes(self._path(key), buffer.getvalue())

    def put_info(self, key: str, info: dict) -> None:
        """Keep what rendering the clip decided (render_clip_info) beside it."""
        atomic_write_bytes(self._path(key).with_suffix(".json"), json.dumps(info, sort_keys=True).encode())

    def info(self, key: str) -> dict:
        try:
            return json.loads(self._path(key).with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def keep_only(self, keys: Iterable[str]) -> int:
        """Delete clips not in `keys` (after an edit); returns how many went."""
        wanted = set(keys)
        gone = 0
        for path in self.folder.glob("*.wav") if self.folder.is_dir() else ():
            if path.stem not in wanted:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                gone += 1
        return gone


class Runner(Protocol):
    def run(self, clips: list[Clip], on_done: Callable[[Clip, np.ndarray], None], check: Check) -> None:
        """Render every clip and call on_done(clip, audio) for each as it finishes (in any order,
        from the calling thread). check() raises to stop."""


class LocalRunner:
    """Clips rendered one after another by the service's engine, in this process."""

    def __init__(self, synth: Synthesizer, progress: ProgressFn = no_progress):
        self.synth = synth
        self.progress = progress

    def run(self, clips: list[Clip], on_done: Callable[[Clip, np.ndarray], None], check: Check) -> None:
        for i, clip in enumerate(clips):
            check()
            share = (i / len(clips), 1 / len(clips))
            progress = checking(lambda f, stage, s=share: self.progress(s[0] + s[1] * f, stage), check)
            audio = render_clip(self.synth, clip, progress, check)
            on_done(clip, audio)


def render_missing(clips: list[Clip], store: ClipStore, runner: Runner, check: Check = lambda: None,
                   on_done: Callable[[Clip, np.ndarray], None] = lambda clip, audio: None) -> int:
    """Render the clips `store` lacks (each distinct key once) and store them as they finish;
    returns how many were rendered. Stored clips are never rendered again."""
    missing = list({clip.key: clip for clip in clips if clip.key not in store}.values())

    def keep(clip: Clip, audio: np.ndarray) -> None:
        store.put(clip.key, audio)
        on_done(clip, audio)

    if missing:
        runner.run(missing, keep, check)
    return len(missing)
