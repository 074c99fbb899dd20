"""Atomic file writes: readers see either the old file or the whole new one, never a part.

A write goes to a hidden temporary file beside the target (".<name>.<random>.tmp"), is fsync'ed,
then moved into place with `os.replace`, which is atomic within one filesystem. A failed write
removes its temporary file; only a killed process can leave one, and `remove_temp_leftovers`
clears those at the next start. Standard library only, so every layer may import it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

TEMP_SUFFIX = ".tmp"
COPY_CHUNK = 16 * 1024 * 1024

# ".<target name>.<random>.tmp": hidden, and never a name the stores give a real file.
_TEMP_NAME = re.compile(r"^\..+\.[^.]+\.tmp$")


def is_temp_leftover(path: Path) -> bool:
    return bool(_TEMP_NAME.match(path.name))


def _atomic_write(path: str | os.PathLike, fill: Callable[[BinaryIO], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, document: Any, indent: int | None = 2) -> Path:
    """JSON as UTF-8 (non-ASCII kept readable). Serialising happens first, so a value JSON cannot
    hold raises TypeError before anything is written."""
    return atomic_write_text(path, json.dumps(document, ensure_ascii=False, indent=indent))


def atomic_copy_file(source: str | os.PathLike, target: str | os.PathLike, chunk: int = COPY_CHUNK) -> Path:
    """Copy a file of any size in chunks, atomically. Leftovers of an earlier killed copy to the
    same target are removed first, so repeated interruptions of a multi-GB copy never pile up."""
    target = Path(target)
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
    with open(source, "rb") as src:
        return _atomic_write(target, lambda out: shutil.copyfileobj(src, out, chunk))


def remove_temp_leftovers(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the temporary files of unfinished atomic writes under `folder`; returns them.
    Only call it when nothing writes there (at start, one process per folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(f".*{TEMP_SUFFIX}") if recursive else folder.glob(f".*{TEMP_SUFFIX}")
    removed = []
    for path in found:
        if path.is_file() and is_temp_leftover(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed

