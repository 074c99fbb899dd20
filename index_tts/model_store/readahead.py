"""Read a weight file once, front to back, before it is loaded.

`torch.load(mmap=True)` and safetensors map the file and fault pages in as tensors are touched,
which is in key order, not file order. On a local disk that is fine; on an rclone, NFS or SMB mount
it becomes many small random reads, each a round trip. One sequential pass first fills the page
cache (and rclone's VFS cache), so the load that follows reads from memory and the mount sees each
file once, in order. On local disks it is skipped: there the extra pass would only cost time.

INDEX_TTS_READ_AHEAD=1 forces it on, =0 off; otherwise it is on for network and FUSE mounts.
"""

from __future__ import annotations

import os
from pathlib import Path

from index_tts.model_store.doctor import find_mount

ENV = "INDEX_TTS_READ_AHEAD"
CHUNK = 16 * 2**20


def wanted(path: str | os.PathLike) -> bool:
    forced = os.environ.get(ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    mount = find_mount(Path(path))
    return mount is not None and mount.kind != "local"


def read_ahead(path: str | os.PathLike, chunk: int = CHUNK) -> int:
    """Read `path` sequentially in large chunks and drop the bytes; returns how many were read."""
    total = 0
    buffer = bytearray(chunk)
    with open(path, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except OSError:
                pass  # advice only; some FUSE filesystems refuse it
        while n := f.readinto(buffer):
            total += n
    return total
