"""What a downloaded file should be, and whether it still is: the download record and hashing.

After fetching a repo, `download` writes the server's listing (size and hash of every file it
fetched) to `models--org--name/index_tts/<commit>.json`, beside huggingface_hub's own `snapshots/`,
`refs/` and `blobs/` (hf's cache scanner ignores other folders). `doctor` compares sizes against
it without the network; `doctor --verify` re-hashes. Hashes are the Hub's own: sha256 for LFS
files (also the blob's file name, huggingface_hub stores a blob under its ETag) and the git blob
sha1 for small files kept in git.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

CHUNK = 8 << 20  # 8 MiB reads: sequential, few syscalls


@dataclass(frozen=True)
class Expected:
    size: int | None
    sha256: str | None = None     # LFS files
    git_sha1: str | None = None   # files stored in git itself


def record_path(repo_dir: Path, commit: str) -> Path:
    return repo_dir / "index_tts" / f"{commit}.json"


def read_record(repo_dir: Path, commit: str) -> dict[str, Expected]:
    """path in repo -> Expected, from the download record; {} when there is none (or it is unreadable)."""
    try:
        data = json.loads(record_path(repo_dir, commit).read_text(encoding="utf-8"))
        return {path: Expected(**fields) for path, fields in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def record_json(repo_id: str, revision: str, commit: str, endpoint: str, files: dict[str, Expected]) -> str:
    body = {"repo": repo_id, "revision": revision, "commit": commit, "endpoint": endpoint,
            "files": {path: asdict(e) for path, e in sorted(files.items())}}
    return json.dumps(body, indent=1) + "\n"


def hash_file(path: Path, git_blob: bool = False, on_bytes=lambda n: None) -> str:
    """sha256 of the content, or (git_blob) git's blob sha1, "blob <size>\\0" + content."""
    h = hashlib.sha1() if git_blob else hashlib.sha256()
    with open(path, "rb") as f:
        if git_blob:
            h.update(b"blob %d\0" % Path(path).stat().st_size)
        while chunk := f.read(CHUNK):
            h.update(chunk)
            on_bytes(len(chunk))
    return h.hexdigest()


def check_hash(path: Path, expected: Expected, on_bytes=lambda n: None) -> str:
    """'' when the content matches `expected`'s hash, else what differs. No hash known: ''."""
    if expected.sha256:
        got = hash_file(path, on_bytes=on_bytes)
        return "" if got == expected.sha256 else f"sha256 {got[:12]}..., expected {expected.sha256[:12]}..."
    if expected.git_sha1:
        got = hash_file(path, git_blob=True, on_bytes=on_bytes)
        return "" if got == expected.git_sha1 else f"git sha1 {got[:12]}..., expected {expected.git_sha1[:12]}..."
    return ""
