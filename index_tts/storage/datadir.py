"""The data folder: where each store lives, output names, and the clean-up at start."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from index_tts.fileio import remove_temp_leftovers
from index_tts.storage.base import FolderStore
from index_tts.storage.glossary import GLOSSARY_FILE
from index_tts.storage.history import HistoryStore, Retention

log = logging.getLogger(__name__)

DATA_ENV = "INDEX_TTS_DATA"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_ENV) or "data")


def unique_output_name(suffix: str = ".wav") -> str:
    """A name no other output will get: UTC time to the microsecond plus a random id.

    The time makes names sort chronologically; the random part keeps two requests in the same
    microsecond (or two processes sharing a folder) apart.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    return f"{stamp}_{secrets.token_hex(4)}{suffix}"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def presets(self) -> Path:
        return self.root / "presets"

    @property
    def voices(self) -> Path:
        return self.root / "voices"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def emotion_presets(self) -> Path:
        return self.root / "emotion_presets.json"

    @property
    def glossary(self) -> Path:
        return self.root / GLOSSARY_FILE

    @property
    def tmp(self) -> Path:
        """Files that live only as long as a request (uploads); emptied at start."""
        return self.root / "tmp"

    @property
    def gradio_temp(self) -> Path:
        """Gradio's upload and cache folder (GRADIO_TEMP_DIR)."""
        return self.tmp / "gradio"

    def ensure(self) -> "DataDir":
        for folder in (self.outputs, self.presets, self.voices, self.history):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def new_output_path(self, suffix: str = ".wav") -> Path:
        return self.outputs / unique_output_name(suffix)

    def remove_crash_leftovers(self) -> list[Path]:
        """Delete what a killed process can leave behind: temporary files of unfinished atomic
        writes, folders moved aside for deletion, and history files no record explains (a voice
        copy or subtitles written just before the crash). Real files are never touched. Call at
        start, before anything writes (one server per data folder). Returns what was removed."""
        removed = remove_temp_leftovers(self.root, recursive=False)  # glossary, emotion presets
        for folder in (self.outputs, self.history):
            removed += remove_temp_leftovers(folder)
        for folder in (self.presets, self.voices):
            removed += FolderStore(folder).remove_leftovers()
        # Any retention will do here: orphans do not depend on it.
        removed += HistoryStore(self.history, self.outputs, Retention()).remove_orphans()
        if removed:
            log.warning("removed %d leftover(s) of an interrupted write: %s", len(removed),
                        ", ".join(str(p.relative_to(self.root)) for p in removed[:10]))
        return removed

    def clear_gradio_temp(self) -> Path:
        """Empty Gradio's folder (uploads and copies of earlier runs belong to no page now)."""
        shutil.rmtree(self.gradio_temp, ignore_errors=True)
        self.gradio_temp.mkdir(parents=True, exist_ok=True)
        return self.gradio_temp
