"""Saved presets: presets/<name>/preset.json (voice + every parameter) beside its audio."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index_tts.fileio import atomic_copy_file
from index_tts.storage.base import FolderStore, Problem

log = logging.getLogger(__name__)

PRESET_FILE = "preset.json"
PRESET_FORMAT_VERSION = 1
PresetProblem = Problem  # the name callers know


@dataclass
class Preset:
    """A saved studio state. `params` is whatever the UI stores (emotion + generation settings);
    audio paths point into the preset's own folder and are None when not saved."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    voice_path: Path | None = None
    emotion_audio_path: Path | None = None


class PresetStore(FolderStore):
    WHAT = "preset"
    META_FILE = PRESET_FILE
    FORMAT_VERSION = PRESET_FORMAT_VERSION

    def save(
        self,
        name: str,
        params: dict[str, Any],
        voice: str | os.PathLike | None = None,
        emotion_audio: str | os.PathLike | None = None,
    ) -> tuple[Preset, bool]:
        """Save (or overwrite) a preset. Returns the stored preset and whether one was replaced."""
        with self._lock:
            folder = self._folder(name)
            replaced = (folder / PRESET_FILE).exists()
            folder.mkdir(parents=True, exist_ok=True)
            files: dict[str, str | None] = {"voice": None, "emotion_audio": None}
            for key, source, target in (("voice", voice, "voice.wav"), ("emotion_audio", emotion_audio, "emotion.wav")):
                dest = folder / target
                if source is not None:
                    if Path(source).resolve() != dest.resolve():
                        atomic_copy_file(source, dest)
                    files[key] = target
                elif dest.exists():
                    dest.unlink()  # a stale file from the preset this one overwrites
            # preset.json last: a preset counts as saved only once its audio is in place.
            self._write_meta(folder, {"saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      "params": params, "files": files})
        return self.load(folder.name), replaced

    def load(self, name: str) -> Preset:
        """Load one preset; raises FileNotFoundError if absent, ValueError if corrupt."""
        folder = self._folder(name)
        document = self._read_meta(folder)
        if not isinstance(document.get("params"), dict):
            raise self.corrupt(folder, "missing 'params'")
        files = document.get("files") or {}
        if not isinstance(files, dict):
            raise self.corrupt(folder, "bad 'files'")

        def audio(key: str) -> Path | None:
            rel = files.get(key)
            if not rel:
                return None
            p = folder / Path(str(rel)).name  # never follow a path out of the preset folder
            if not p.is_file():
                log.warning("preset %r: %s file %s is missing; ignored", folder.name, key, p.name)
                return None
            return p

        return Preset(folder.name, document["params"], audio("voice"), audio("emotion_audio"))

    def scan(self) -> tuple[list[str], list[Problem]]:
        """All loadable preset names (sorted) and the problems found; corrupt presets are skipped."""
        presets, problems = self._scan(self.load)
        return [p.name for p in presets], problems

    def names(self) -> list[str]:
        return self.scan()[0]
