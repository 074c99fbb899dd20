"""Resident pages of memory-mapped checkpoint files: dropped when the weights in them are idle.

Weights that only build a new voice's conditioning (w2v-BERT, the GPT's conditioning conformers
and perceivers) stay views of their memory-mapped checkpoint files (engines/precision.py). Reading
them pages the file in, and those pages count in the process's RSS until it lets go of them. After
a new voice is built, `release` drops them (madvise MADV_DONTNEED): the mapping stays, the page
cache keeps the file's pages (clean, reclaimable by the kernel), and the next new voice reads them
back with minor page faults, not from disk. So these weights cost memory only while a voice is
being built, not for the life of the process.

A private mapping with a modified (copy-on-write) page is left alone: dropping it would bring back
the file's bytes in place of the change. Our weights are never written, so this is a safeguard.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

MADV_DONTNEED = 4


def _mappings(paths: set[str]) -> list[tuple[int, int, bool]]:
    """(start, end, droppable) of this process's mappings of these files, from /proc/self/smaps."""
    found, current = [], None
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(maxsplit=5)
                if "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's header line
                    current = None
                    if len(head) == 6 and head[5].strip() in paths:
                        start, end = (int(x, 16) for x in head[0].split("-"))
                        current = [start, end, head[1][3] == "s"]  # shared: never copy-on-write
                        found.append(current)
                elif current is not None and head[0] == "Anonymous:":
                    current[2] = current[2] or int(head[1]) == 0  # private and unmodified
    except OSError:
        return []
    return [(s, e, ok) for s, e, ok in found]


def release(files: list[Path]) -> int:
    """Drop this process's resident pages of these (memory-mapped, unmodified) files; returns
    the bytes of mapping released. A no-op where the files are not mapped or off Linux."""
    paths = {os.path.realpath(p) for p in files}
    spans = [(s, e) for s, e, ok in _mappings(paths) if ok]
    if not spans:
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    released = 0
    for start, end in spans:
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED) == 0:
            released += end - start
    return released


def resident_bytes(files: list[Path]) -> int:
    """Bytes of these files' mappings resident in this process now (for tests and the bench)."""
    paths = {os.path.realpath(p) for p in files}
    total, current = 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(maxsplit=5)
                if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                    current = len(head) == 6 and head[5].strip() in paths
                elif current and head[0] == "Rss:":
                    total += int(head[1]) * 1024
    except OSError:
        return 0
    return total
