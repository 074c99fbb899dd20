"""The two shapes every store takes, written once, and the rule for names users type.

- `FolderStore`: one folder per named record (a saved preset, a library voice): the record's own
  files beside a JSON metadata file that is written last, so a record exists only once its files
  are complete. Deleting moves the folder aside first, so a crash never leaves half a record
  under its name.
- `JsonDocumentStore`: a whole collection in one JSON file (the glossary, the user's emotion
  presets), rewritten atomically on every change. A file that cannot be read is logged, described
  in `problem` and read as empty: the studio keeps working and the next save replaces it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from index_tts.fileio import atomic_write_json, remove_temp_leftovers

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
TRASH_PREFIX = ".deleted-"

T = TypeVar("T")


def sanitize_name(name: str, what: str = "preset") -> str:
    """Turn a user-typed name into a safe folder name, or raise ValueError.

    Letters of any script, digits, spaces, '-' and '_' are kept; anything else (slashes, dots,
    control characters) becomes '_'. The result can never be '.', '..', absolute or nested.
    """
    if not isinstance(name, str):
        raise ValueError(f"{what} name must be text")
    name = unicodedata.normalize("NFKC", name)
    cleaned = re.sub(r"[^\w\- ]", "_", name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" _-")
    cleaned = cleaned[:MAX_NAME_CHARS].strip(" _-")
    if not cleaned:
        raise ValueError(f"{what} name {name!r} has no usable characters")
    return cleaned


@dataclass(frozen=True)
class Problem:
    """A record that could not be read: its folder name and why."""

    name: str
    message: str


class FolderStore:
    """Records in folders under `root`, one per name, each with a `META_FILE` written last."""

    WHAT = "record"          # the word in messages: "no voice named 'x'"
    META_FILE = "record.json"
    FORMAT_VERSION = 1

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._lock = threading.RLock()  # overwrite/rename decisions are check-then-act

    def _folder(self, name: str) -> Path:
        folder = self.root / sanitize_name(name, self.WHAT)
        # Defence in depth: sanitize_name already forbids separators and dots.
        if folder.resolve().parent != self.root.resolve():
            raise ValueError(f"{self.WHAT} name {name!r} is not allowed")
        return folder

    def exists(self, name: str) -> bool:
        return (self._folder(name) / self.META_FILE).is_file()

    def _read_meta(self, folder: Path) -> dict[str, Any]:
        """The metadata of the record in `folder`: FileNotFoundError when absent, ValueError when corrupt."""
        path = folder / self.META_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {self.WHAT} named {folder.name!r}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self.corrupt(folder, e) from e
        if not isinstance(document, dict):
            raise self.corrupt(folder, "expected an object")
        return document

    def corrupt(self, folder: Path, why: object) -> ValueError:
        return ValueError(f"{self.WHAT} {folder.name!r} is corrupt: {why}")

    def _write_meta(self, folder: Path, fields: dict[str, Any]) -> None:
        atomic_write_json(folder / self.META_FILE, {"format_version": self.FORMAT_VERSION, "name": folder.name, **fields})

    def delete(self, name: str) -> bool:
        """Remove a record and all its files; False when there was none."""
        with self._lock:
            folder = self._folder(name)
            if not folder.is_dir():
                return False
            # Move aside first so a crash mid-delete never leaves half a record under its name.
            trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{secrets.token_hex(4)}")
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return True

    def _scan(self, load: Callable[[str], T]) -> tuple[list[T], list[Problem]]:
        """Every record `load` can read, by name case-insensitively, and the problems found."""
        loaded: list[T] = []
        problems: list[Problem] = []
        if not self.root.is_dir():
            return loaded, problems
        for folder in sorted(self.root.iterdir(), key=lambda p: (p.name.casefold(), p.name)):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                loaded.append(load(folder.name))
            except (ValueError, OSError) as e:
                log.warning("skipping %s %r: %s", self.WHAT, folder.name, e)
                problems.append(Problem(folder.name, str(e)))
        return loaded, problems

    def remove_leftovers(self) -> list[Path]:
        """What a killed process leaves: unfinished writes and folders moved aside for deletion.
        Call at start, before anything writes."""
        removed = remove_temp_leftovers(self.root)
        if self.root.is_dir():
            for trash in self.root.glob(f"{TRASH_PREFIX}*"):
                if trash.is_dir():
                    shutil.rmtree(trash, ignore_errors=True)
                    removed.append(trash)
        return removed


class JsonDocumentStore:
    """A collection in one JSON file: {"format_version": 1, KEY: <collection>}."""

    WHAT = "document"
    KEY = "items"
    FORMAT_VERSION = 1

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.problem = ""  # why the file was not readable at the last read, else ""
        self._lock = threading.Lock()  # read-modify-write of the whole file

    def _parse(self, document: Any) -> Any:
        """The collection in a parsed file; raise ValueError (or KeyError, TypeError) when it is not one."""
        raise NotImplementedError

    def _read(self, empty: T) -> T:
        self.problem = ""
        if not self.path.is_file():
            return empty
        try:
            return self._parse(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError) as e:
            self.problem = f"{self.path.name} is unreadable and was ignored: {e}"
            log.warning("%s: %s", self.WHAT, self.problem)
            return empty

    def _write(self, collection: Any) -> None:
        atomic_write_json(self.path, {"format_version": self.FORMAT_VERSION, self.KEY: collection})
