"""The voice library: voices/<name>/voice.json (tags, note, default emotion) beside voice.wav."""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index_tts.fileio import atomic_write_bytes
from index_tts.storage.base import MAX_NAME_CHARS, FolderStore, Problem

VOICE_FILE = "voice.json"
VOICE_AUDIO = "voice.wav"
VOICE_FORMAT_VERSION = 1
MAX_VOICE_NOTE_CHARS = 1000
MAX_VOICE_TAGS = 20


class VoiceExists(FileExistsError):
    """Saving or renaming would replace another voice, and the caller did not ask to."""


@dataclass(frozen=True)
class Voice:
    """A saved reference voice. `default_emotion` is whatever the front end stores for it (e.g.
    a preset name or an emotion spec as a dict); None when it has none."""

    name: str
    audio_path: Path
    tags: tuple[str, ...] = ()
    note: str = ""
    default_emotion: Any = None
    created_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": list(self.tags), "note": self.note,
                "default_emotion": self.default_emotion, "created_at": self.created_at}


def _check_tags(tags: object) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = [t for t in tags.split(",")]
    if not isinstance(tags, (list, tuple)):
        raise ValueError(f"tags must be a list of words, got {type(tags).__name__}")
    cleaned = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"tags must be text, got {tag!r}")
        tag = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", tag)).strip()
        if any(unicodedata.category(c) in ("Cc", "Cf") for c in tag) or len(tag) > MAX_NAME_CHARS:
            raise ValueError(f"tags: {tag[:20]!r}... is not a usable tag")
        if tag and tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_VOICE_TAGS:
        raise ValueError(f"tags: at most {MAX_VOICE_TAGS} tags")
    return tuple(cleaned)


def _check_note(note: object) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ValueError(f"note must be text, got {type(note).__name__}")
    note = note.strip()
    if len(note) > MAX_VOICE_NOTE_CHARS:
        raise ValueError(f"note is too long ({len(note)} characters; at most {MAX_VOICE_NOTE_CHARS})")
    return note


class VoiceStore(FolderStore):
    """The store keeps bytes and metadata; checking that the audio is a usable voice (length,
    silence, sample rate) is the service's job, before it calls `save`."""

    WHAT = "voice"
    META_FILE = VOICE_FILE
    FORMAT_VERSION = VOICE_FORMAT_VERSION

    def save(self, name: str, wav_bytes: bytes, *, tags: object = (), note: object = "",
             default_emotion: Any = None, overwrite: bool = False) -> tuple[Voice, bool]:
        """Store a voice (WAV bytes) with its metadata. Returns (voice, replaced an existing one).
        Raises VoiceExists when the name is taken and `overwrite` is false."""
        tags, note = _check_tags(tags), _check_note(note)
        json.dumps(default_emotion)  # must be storable; raises TypeError otherwise
        with self._lock:
            folder = self._folder(name)
            replaced = (folder / VOICE_FILE).exists()
            if replaced and not overwrite:
                raise VoiceExists(f"a voice named {folder.name!r} already exists")
            atomic_write_bytes(folder / VOICE_AUDIO, wav_bytes)
            self._write_voice_meta(folder, tags, note, default_emotion)
        return self.get(folder.name), replaced

    def _write_voice_meta(self, folder: Path, tags: tuple[str, ...], note: str, default_emotion: Any,
                          created_at: str | None = None) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._write_meta(folder, {"tags": list(tags), "note": note, "default_emotion": default_emotion,
                                  "created_at": created_at or now, "updated_at": now})

    def get(self, name: str) -> Voice:
        """One voice; FileNotFoundError when absent, ValueError when its files are corrupt."""
        folder = self._folder(name)
        document = self._read_meta(folder)
        try:
            voice = Voice(folder.name, folder / VOICE_AUDIO, _check_tags(document.get("tags")),
                          _check_note(document.get("note")), document.get("default_emotion"),
                          str(document.get("created_at", "")))
        except ValueError as e:
            raise self.corrupt(folder, e) from e
        if not voice.audio_path.is_file():
            raise self.corrupt(folder, f"{VOICE_AUDIO} is missing")
        return voice

    def update(self, name: str, *, tags: object = None, note: object = None, default_emotion: Any = ...) -> Voice:
        """Change a voice's metadata; arguments left out keep their value."""
        with self._lock:
            voice = self.get(name)
            self._write_voice_meta(self._folder(voice.name), voice.tags if tags is None else _check_tags(tags),
                                   voice.note if note is None else _check_note(note),
                                   voice.default_emotion if default_emotion is ... else default_emotion,
                                   voice.created_at)
        return self.get(voice.name)

    def rename(self, old: str, new: str, overwrite: bool = False) -> Voice:
        with self._lock:
            voice = self.get(old)
            source, target = self._folder(voice.name), self._folder(new)
            if source == target:
                return voice
            if target.exists():
                if not overwrite:
                    raise VoiceExists(f"a voice named {target.name!r} already exists")
                shutil.rmtree(target)
            os.replace(source, target)  # a folder rename: atomic within the library
            self._write_voice_meta(target, voice.tags, voice.note, voice.default_emotion, voice.created_at)
        return self.get(target.name)

    def scan(self) -> tuple[list[Voice], list[Problem]]:
        """All readable voices (sorted by name, case-insensitively) and the problems found."""
        return self._scan(self.get)
