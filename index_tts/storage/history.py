"""The history of outputs: one JSON record per generated file, and the retention that bounds it.

An entry is made of files that belong to it alone (its record `history/<id>.json`, side files
sharing the id such as `<id>.srt` and `<id>.lines.zip`, and its audio `outputs/<id>.<format>`)
and of voice copies it may share with other entries (`history/voices/<content hash>.wav`, kept
once each so an entry can be regenerated after the upload that made it is gone). Deleting an
entry, by hand or by retention, removes its own files and every voice copy no other entry names.

Retention: after each new entry, the oldest entries go until at most `max_entries` remain and
their files take at most `max_bytes`. The newest entry always stays, even when it alone is
larger. Outputs without a record (from versions that kept no history) are never touched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index_tts.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

HISTORY_FORMAT_VERSION = 1
MAX_ENTRIES_ENV = "INDEX_TTS_HISTORY_MAX_ENTRIES"
MAX_GB_ENV = "INDEX_TTS_HISTORY_MAX_GB"
DEFAULT_MAX_ENTRIES = 500
DEFAULT_MAX_GB = 5.0
GB = 10**9

_ENTRY_ID = re.compile(r"^[0-9A-Za-z_]{1,80}$")
_OUTPUT_ID = re.compile(r"^\d{8}T\d{6}_\d{6}Z_[0-9a-f]+$")  # the stem unique_output_name gives
_VOICE_COPY = re.compile(r"^(?:[0-9a-f]{1,32}|voice)\.wav$")  # what keep_voice names a copy


@dataclass(frozen=True)
class Retention:
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = int(DEFAULT_MAX_GB * GB)

    def __post_init__(self):
        if isinstance(self.max_entries, bool) or not isinstance(self.max_entries, int) or self.max_entries < 1:
            raise ValueError(f"history max entries must be a whole number >= 1, got {self.max_entries!r}")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise ValueError(f"history max size must be a positive number of bytes, got {self.max_bytes!r}")

    @classmethod
    def from_gb(cls, max_entries: int, max_gb: float) -> "Retention":
        if not isinstance(max_gb, (int, float)) or not math.isfinite(max_gb) or max_gb <= 0:
            raise ValueError(f"history max GB must be a positive number, got {max_gb!r}")
        return cls(max_entries, max(1, int(max_gb * GB)))

    @classmethod
    def from_env(cls) -> "Retention":
        """$INDEX_TTS_HISTORY_MAX_ENTRIES and $INDEX_TTS_HISTORY_MAX_GB, else the defaults."""
        entries, gb = os.environ.get(MAX_ENTRIES_ENV) or "", os.environ.get(MAX_GB_ENV) or ""
        try:
            return cls.from_gb(int(entries) if entries else DEFAULT_MAX_ENTRIES, float(gb) if gb else DEFAULT_MAX_GB)
        except ValueError as e:
            raise ValueError(f"{MAX_ENTRIES_ENV}={entries!r} / {MAX_GB_ENV}={gb!r}: {e}") from e


def voice_copies_named(record: Any) -> set[str]:
    """The voice copies a record names, found by their name's shape wherever they sit, so the
    count stays right whatever form the request record takes. A stray match only keeps a file."""
    found: set[str] = set()
    stack = [record]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and _VOICE_COPY.match(value):
            found.add(value)
    return found


@dataclass(frozen=True)
class _Entry:
    id: str
    own_files: tuple[Path, ...]   # record, side files, audio: removed with the entry
    own_bytes: int
    voices: frozenset[str]        # voice copies it names: removed when no other entry does


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _unlink(path: Path) -> int:
    """Remove a file; returns the bytes freed (0 when it was already gone)."""
    size = _size(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


class HistoryStore:
    """Records in `root` (data/history), named by their output's stem; audio in `outputs`."""

    def __init__(self, root: str | os.PathLike, outputs: str | os.PathLike, retention: Retention | None = None):
        self.root = Path(root)
        self.outputs = Path(outputs)
        self.voice_dir = self.root / "voices"
        self.retention = retention if retention is not None else Retention.from_env()
        self._lock = threading.RLock()
        # Voice copies kept for a record not written yet: no delete may take them meanwhile.
        self._pending: set[str] = set()
        # What each record names, by id with its mtime: records are written once, and reading
        # them all again for every new entry would cost more than the retention is worth.
        self._read_cache: dict[str, tuple[int, str | None, frozenset[str]]] = {}

    def _record_path(self, entry_id: str) -> Path:
        if not isinstance(entry_id, str) or not _ENTRY_ID.match(entry_id):
            raise ValueError(f"history id {entry_id!r} is not valid")
        return self.root / f"{entry_id}.json"

    def side_file(self, entry_id: str, suffix: str) -> Path:
        """Where a record's subtitles (".srt") or line zip (".lines.zip") live."""
        return self._record_path(entry_id).with_suffix(suffix)

    def keep_voice(self, key: str, wav_bytes: bytes) -> str:
        """Store a voice reference once (by content hash); returns its file name under voices/.
        The record that names it must follow through `add`."""
        name = f"{re.sub(r'[^0-9a-f]', '', key)[:32] or 'voice'}.wav"
        with self._lock:
            path = self.voice_dir / name
            if not path.is_file():
                atomic_write_bytes(path, wav_bytes)
            self._pending.add(name)
        return name

    def voice_file(self, name: str) -> Path:
        path = self.voice_dir / Path(str(name)).name
        if not path.is_file():
            raise FileNotFoundError(f"the voice file {path.name} of this history entry is missing")
        return path

    def add(self, audio_path: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Write the record of the output at `audio_path`, then apply the retention; returns the
        record with id, audio and time."""
        entry_id = Path(audio_path).name.split(".")[0]
        document = {"format_version": HISTORY_FORMAT_VERSION, "id": entry_id, "audio": Path(audio_path).name,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        with self._lock:
            atomic_write_json(self._record_path(entry_id), document, indent=1)
            self._pending -= voice_copies_named(document)
            try:
                self.prune(keep=entry_id)
            except OSError as e:  # the output is saved; failing to tidy up must not fail the request
                log.warning("history: could not remove old entries: %s", e)
        return document

    def get(self, entry_id: str) -> dict[str, Any]:
        """One record; FileNotFoundError when absent (or its audio is gone), ValueError when corrupt."""
        path = self._record_path(entry_id)
        if not path.is_file():
            raise FileNotFoundError(f"no history entry {entry_id!r}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"history entry {entry_id!r} is corrupt: {e}") from e
        if not isinstance(document, dict) or not isinstance(document.get("audio"), str):
            raise ValueError(f"history entry {entry_id!r} is corrupt: no audio file named")
        if not self.audio_path(document).is_file():
            raise FileNotFoundError(f"the audio of history entry {entry_id!r} is gone")
        return document

    def audio_path(self, record: dict[str, Any]) -> Path:
        return self.outputs / Path(record["audio"]).name

    def list(self, limit: int = 200) -> list[dict[str, Any]]:
        """Readable records, newest first (ids start with the UTC time); unreadable ones are logged and skipped."""
        if not self.root.is_dir():
            return []
        records = []
        for path in sorted(self.root.glob("*.json"), reverse=True):
            if len(records) >= limit:
                break
            try:
                records.append(self.get(path.stem))
            except (ValueError, OSError) as e:
                log.warning("skipping history entry %s: %s", path.name, e)
        return records

    def delete(self, entry_id: str) -> bool:
        """Remove an entry and every file it alone used; False when there was none."""
        self._record_path(entry_id)  # refuses an id that is not one
        with self._lock:
            entries = self._entries()
            entry = next((e for e in entries if e.id == entry_id), None)
            if entry is None:
                return False
            self._remove(entry, Counter(name for e in entries for name in e.voices))
        return True

    def usage(self) -> tuple[int, int]:
        """(entries, bytes their files take, shared voice copies counted once)."""
        with self._lock:
            entries = self._entries()
            return len(entries), self._bytes(entries, {name for e in entries for name in e.voices})

    def prune(self, keep: str | None = None) -> list[str]:
        """Remove the oldest entries (never `keep`) until the retention holds; returns their ids."""
        limit = self.retention
        removed: list[str] = []
        with self._lock:
            entries = self._entries()
            used = Counter(name for e in entries for name in e.voices)
            total = self._bytes(entries, set(used))
            for entry in entries:  # oldest first
                if len(entries) - len(removed) <= limit.max_entries and total <= limit.max_bytes:
                    break
                if entry.id != keep:
                    total -= self._remove(entry, used)
                    removed.append(entry.id)
        if removed:
            log.info("history: removed %d old entr%s to stay within %d entries and %.2f GB", len(removed),
                     "y" if len(removed) == 1 else "ies", limit.max_entries, limit.max_bytes / GB)
        return removed

    def remove_orphans(self) -> list[Path]:
        """Remove history files no record explains: voice copies no record names, and side files
        whose record is gone (a crash between writing them and the record). Call at start."""
        removed: list[Path] = []
        with self._lock:
            entries = self._entries()
            ids = {e.id for e in entries}
            named = {name for e in entries for name in e.voices} | self._pending
            if self.root.is_dir():
                removed += [p for p in self.root.iterdir() if p.is_file() and p.suffix != ".json"
                            and _OUTPUT_ID.match(p.name.split(".")[0]) and p.name.split(".")[0] not in ids]
            if self.voice_dir.is_dir():
                removed += [p for p in self.voice_dir.iterdir()
                            if p.is_file() and _VOICE_COPY.match(p.name) and p.name not in named]
            for path in removed:
                path.unlink(missing_ok=True)
        return removed

    def _entries(self) -> list[_Entry]:
        """Every entry with a record, oldest first; an unreadable record still owns its files."""
        if not self.root.is_dir():
            return []
        # An entry's id is its output's stem, so its own files are found by name even when its
        # record cannot be read.
        by_id: dict[str, dict[Path, os.stat_result]] = {}
        for folder in (self.root, self.outputs):
            if folder.is_dir():
                with os.scandir(folder) as found:
                    for item in found:
                        if not item.name.startswith(".") and item.is_file(follow_symlinks=False):
                            by_id.setdefault(item.name.split(".")[0], {})[Path(item.path)] = item.stat()
        entries = []
        for entry_id in sorted(by_id):
            files = by_id[entry_id]
            record_path = self.root / f"{entry_id}.json"
            if record_path not in files or not _ENTRY_ID.match(entry_id):
                continue
            audio, voices = self._names_in(entry_id, record_path, files[record_path].st_mtime_ns)
            own = sorted(files, key=lambda p: p != record_path)  # the record first
            if audio is not None and self.outputs / audio not in files:
                own.append(self.outputs / audio)
            entries.append(_Entry(entry_id, tuple(own), sum(st.st_size for st in files.values()), voices))
        self._read_cache = {k: v for k, v in self._read_cache.items() if k in by_id}
        return entries

    def _names_in(self, entry_id: str, record_path: Path, mtime_ns: int) -> tuple[str | None, frozenset[str]]:
        """The audio file and the voice copies a record names (None, {} when it is unreadable)."""
        cached = self._read_cache.get(entry_id)
        if cached is None or cached[0] != mtime_ns:
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                record = None
            audio = record.get("audio") if isinstance(record, dict) else None
            cached = (mtime_ns, Path(audio).name if isinstance(audio, str) else None, frozenset(voice_copies_named(record)))
            self._read_cache[entry_id] = cached
        return cached[1], cached[2]

    def _bytes(self, entries: list[_Entry], named: set[str]) -> int:
        """What the entries' files take, each voice copy (named or pending) counted once."""
        return sum(e.own_bytes for e in entries) + sum(_size(self.voice_dir / n) for n in named | self._pending)

    def _remove(self, entry: _Entry, named: Counter) -> int:
        """Delete an entry's own files (the record first: a half-deleted entry is then simply gone
        from the list) and the voice copies no other entry names; returns the bytes freed."""
        freed = sum(_unlink(p) for p in entry.own_files)
        for name in entry.voices:
            named[name] -= 1
            if named[name] <= 0 and name not in self._pending:
                freed += _unlink(self.voice_dir / name)
        return freed
