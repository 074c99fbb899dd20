"""Memory backed by 2 MB pages where Linux offers them (transparent huge pages, "always" or
"madvise"), for the weights a decode step streams; and handing freed heap memory back.

Why: a beam-3 decode step reads all 1.9 GB of the GPT's weights once. In 4 KB pages that is a TLB
miss every 4 KB; in 2 MB pages, one every 2 MB. Measured here (AMD EPYC Zen 4, docs/performance.md)
the panel kernel streamed the GPT's weights at 55.5 GB/s from 4 KB pages and 61.7 GB/s from 2 MB
pages. Elsewhere (no THP, other systems) this is plain torch memory.
"""

from __future__ import annotations

import ctypes
import mmap
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
    region = mmap.mmap(-1, nbytes + PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    whole = torch.frombuffer(region, dtype=torch.uint8)  # holds `region` while any view lives
    start = -whole.data_ptr() % PAGE
    return whole[start:start + nbytes]


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
