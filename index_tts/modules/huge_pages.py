"""Memory backed by 2 MB pages where Linux offers them (transparent huge pages, "always" or
"madvise"), for the weights a decode step streams and for its KV cache (`KeptBuffer`); and
handing freed heap memory back.

Why: a beam-3 decode step reads all 1.9 GB of the GPT's weights once. In 4 KB pages that is a TLB
miss every 4 KB; in 2 MB pages, one every 2 MB. Measured here (AMD EPYC Zen 4, docs/performance.md)
the panel kernel streamed the GPT's weights at 55.5 GB/s from 4 KB pages and 61.7 GB/s from 2 MB
pages. Elsewhere (no THP, other systems) this is plain torch memory.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
from pathlib import Path

import torch
from torch import Tensor

PAGE = 2 << 20
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def available() -> bool:
    """The kernel gives 2 MB pages to memory that asks for them (THP "always" or "madvise")."""
    try:
        setting = THP_SETTING.read_text()
    except OSError:
        return False
    return hasattr(mmap, "MADV_HUGEPAGE") and ("[always]" in setting or "[madvise]" in setting)


def empty(nbytes: int) -> Tensor:
    """An uninitialised uint8 tensor of `nbytes`, starting on a 2 MB boundary and advised to use
    2 MB pages where available(); else torch.empty. Its memory is returned when the last view of
    it is gone."""
    if not available() or nbytes <= 0:
        return torch.empty(max(nbytes, 0), dtype=torch.uint8)
    return _map(nbytes)[2]


def _map(nbytes: int) -> tuple[mmap.mmap, int, Tensor]:
    """A fresh anonymous mapping advised to use 2 MB pages, the offset of its first 2 MB
    boundary, and `nbytes` of it from there (a view that holds the mapping while it lives)."""
    region = mmap.mmap(-1, nbytes + PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # a kernel without THP: plain pages, the same memory
        pass
    whole = torch.frombuffer(region, dtype=torch.uint8)
    start = -whole.data_ptr() % PAGE
    return region, start, whole[start:start + nbytes]


class KeptBuffer:
    """A buffer of 2 MB pages that successive users hold one at a time, mapped for the life of
    the process: a 2 MB page costs its first fault, and the kernel's compaction of memory to find
    it (1-3 ms each here, THP `defrag` "madvise"), once, not once per use. A user says on release
    which of its pages stay resident for the next one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._region: mmap.mmap | None = None
        self._start = 0                      # of the region's first 2 MB boundary
        self._buffer: Tensor | None = None  # the region from there
        self._held = False

    def hold(self, nbytes: int) -> Tensor | None:
        """The buffer's first `nbytes`, uninitialised, on a 2 MB boundary (mapped anew when the
        buffer is smaller); None while another user holds it, or where available() is false."""
        with self._lock:
            if self._held or nbytes <= 0 or not available():
                return None
            if self._buffer is None or self._buffer.numel() < nbytes:
                self._region = self._buffer = None  # the previous user's views are gone: unmapped
                self._region, self._start, self._buffer = _map(nbytes)
            self._held = True
            return self._buffer[:nbytes]

    def release(self, stride: int, kept: int) -> None:
        """Ends the hold. Of every `stride` bytes of the buffer (a multiple of PAGE), the first
        `kept` stay resident; the rest goes back to the system (MADV_DONTNEED: zero pages when
        next touched)."""
        with self._lock:
            if self._buffer is not None and stride > kept:
                size = self._buffer.numel()
                for start in range(kept, size, stride):
                    self._region.madvise(mmap.MADV_DONTNEED, self._start + start, min(stride - kept, size - start))
            self._held = False


def resident_bytes() -> int:
    """Bytes of this process's anonymous memory held in 2 MB pages (0 where unknown)."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def return_freed_memory() -> None:
    """glibc keeps large blocks freed during loading (checkpoint buffers, unpacked originals,
    panels moved into 2 MB pages) in its heap; hand them back to the system so that they do not
    count as ours for the rest of the process, and so that memory allocated next does not come on
    top of them."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
