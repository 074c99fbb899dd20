"""`python -m index_tts doctor`: is the model complete, intact, and on storage fast enough?

`inspect()` checks every file IndexTTS2 needs (present, missing, wrong size, unreadable; with
verify=True also the hash), the free disk, the kind of filesystem cache_hub is on (local,
network, FUSE) and, when asked, its measured read throughput. The app runs it without the
throughput measurement at start-up and shows the result in /readyz and the status banner.
`copy_local()` stages the weights on local disk as a flat model folder (for slow mounts).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from index_tts.fileio import atomic_copy_file
from index_tts.model_store.integrity import CHUNK, Expected, check_hash, hash_file, read_record
from index_tts.model_store.layout import COMMIT_RE, MAIN_REPOS, ModelFiles, load_manifest
from index_tts.model_store.model_files import required_files

SLOW_MB_S = 100.0              # below this a mount is called slow (issue #4)
THROUGHPUT_BUDGET_S = 3.0      # read for at most this long ...
THROUGHPUT_MAX_BYTES = 512 << 20  # ... or this many bytes
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs", "davfs", "sshfs", "virtiofs"}
FIX_DOWNLOAD = "python -m index_tts download"
MODEL_NAMES = {"2": "IndexTTS2", "2.5": "IndexTTS-2.5"}


def fix_download(model: str) -> str:
    return FIX_DOWNLOAD if model == "2" else f"{FIX_DOWNLOAD} --model {model}"


@dataclass
class FileCheck:
    name: str          # logical name
    origin: str        # repo and path in it, or the file in the flat folder
    required: bool
    state: str         # "present", "missing", "wrong size", "unreadable", "hash mismatch"
    size: int | None = None
    detail: str = ""   # what is wrong, or which hash was checked

    @property
    def ok(self) -> bool:
        return self.state == "present"


@dataclass
class Mount:
    mountpoint: str
    fstype: str
    kind: str          # "local", "network" or "fuse"


@dataclass
class Report:
    layout: str                    # where the model is read from, in words
    revision: str                  # active IndexTTS-2 revision ('' for a flat folder)
    files: list[FileCheck]
    free_bytes: int | None
    mount: Mount | None
    throughput_mb_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    model: str = "2"               # "2" (IndexTTS2) or "2.5" (IndexTTS-2.5)

    @property
    def model_name(self) -> str:
        return MODEL_NAMES[self.model]

    @property
    def problems(self) -> list[FileCheck]:
        return [f for f in self.files if f.required and not f.ok]

    @property
    def complete(self) -> bool:
        return not self.problems

    @property
    def fix(self) -> str:
        """One sentence: what is wrong and the command that fixes it ('' when nothing is)."""
        if self.complete:
            return ""
        fix = fix_download(self.model)
        if all(f.state == "missing" for f in self.files if f.required):  # a fresh install: nothing to list
            return f"No {self.model_name} weights in {self.layout} yet. Fetch them (about {_required_gb(self.model):.1f} GB) with `{fix}` (then restart)."
        named = ", ".join(f"{f.origin} ({f.state})" for f in self.problems[:6])
        more = f" and {len(self.problems) - 6} more" if len(self.problems) > 6 else ""
        return f"{self.model_name} needs {named}{more}. Fetch them with `{fix}` (then restart)."

    def as_dict(self) -> dict:
        return {
            "layout": self.layout, "revision": self.revision, "complete": self.complete,
            "missing": [f"{f.origin} ({f.state})" for f in self.problems], "fix": self.fix,
            "free_bytes": self.free_bytes, "mount": asdict(self.mount) if self.mount else None,
            "throughput_mb_s": self.throughput_mb_s, "warnings": list(self.warnings),
        }


def _required_gb(model: str = "2") -> float:
    return sum(f.size or 0 for r in load_manifest(model) for f in r.files if f.required) / 1e9


# ---------------------------------------------------------------------------------------------
# files


def _required_names(files: ModelFiles) -> list[str]:
    try:
        return required_files(files, files.model)
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return ["config.yaml", *[f.logical for r in load_manifest(files.model) for f in r.files
                                 if f.required and f.logical != "config.yaml"]]


def _expected(files: ModelFiles, name: str) -> Expected | None:
    """The size and hash `name` should have: the download record, else the manifest when exact.
    A flat folder has neither (it may hold a generated test model), so None."""
    if files.kind == "flat":
        return None
    real = files.path(name)
    for route in files.routes:
        if route.snapshot is not None and real.is_relative_to(route.snapshot):
            rel = real.relative_to(route.snapshot).as_posix()
            record = read_record(route.snapshot.parent.parent, route.snapshot.name)
            if rel in record:
                return record[rel]
            break
    for repo in load_manifest(files.model):
        for f in repo.files:
            if f.logical == name and (f.size_exact or f.sha256):
                return Expected(size=f.size if f.size_exact else None, sha256=f.sha256)
    return None


def _blob_hash(path: Path) -> Expected | None:
    """A hub-cache file is a symlink to a blob named by its ETag: sha256 (LFS) or git sha1."""
    if not path.is_symlink():
        return None
    name = Path(os.readlink(path)).name
    if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        return Expected(size=None, sha256=name)
    if COMMIT_RE.match(name):
        return Expected(size=None, git_sha1=name)
    return None


def check_file(files: ModelFiles, name: str, required: bool, verify: bool, on_bytes=lambda n: None) -> FileCheck:
    path = files.path(name)
    check = FileCheck(name=name, origin=files.origin(name), required=required, state="present")
    if not path.exists():  # also a snapshot link whose blob is gone
        check.state = "missing"
        return check
    try:
        check.size = path.stat().st_size
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        check.state, check.detail = "unreadable", f"{type(e).__name__}: {e.strerror or e}"
        return check
    expected = _expected(files, name)
    if expected and expected.size is not None and check.size != expected.size:
        check.state, check.detail = "wrong size", f"{check.size} bytes, expected {expected.size}"
        return check
    if verify:
        reference = expected if expected and (expected.sha256 or expected.git_sha1) else _blob_hash(path)
        if reference is None:  # nothing to compare with: print the hash so a person can
            check.detail = f"sha256 {hash_file(path, on_bytes=on_bytes)}, no reference to compare"
        elif why := check_hash(path, reference, on_bytes):
            check.state, check.detail = "hash mismatch", why
        else:
            check.detail = "sha256 ok" if reference.sha256 else "git sha1 ok"
    return check


# ---------------------------------------------------------------------------------------------
# storage


def find_mount(path: Path) -> Mount | None:
    """The mount holding `path` (symlinks followed), from /proc/self/mountinfo; None off Linux."""
    real = os.path.realpath(path)
    best = None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail:
            continue
        point = fields[4].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and (best is None or len(point) >= len(best[0])):
            best = (point, tail[0])
    if best is None:
        return None
    point, fstype = best
    kind = "fuse" if fstype.startswith("fuse") else "network" if fstype in NETWORK_FS else "local"
    return Mount(point, fstype, kind)


def measure_throughput(path: Path, budget_s: float = THROUGHPUT_BUDGET_S, max_bytes: int = THROUGHPUT_MAX_BYTES) -> float | None:
    """MB/s reading `path` sequentially from the start, for up to budget_s or max_bytes.

    The file's pages are dropped from the page cache first (where the filesystem allows it),
    so a local disk is not mistaken for RAM.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
        done, started = 0, time.perf_counter()
        while done < max_bytes and time.perf_counter() - started < budget_s:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            done += len(chunk)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
    return done / 1e6 / elapsed if done and elapsed > 0 else None


def _store_root(files: ModelFiles) -> Path:
    return files.root if files.root.exists() else files.root.parent


# ---------------------------------------------------------------------------------------------
# the report


def inspect(files: ModelFiles, *, verify: bool = False, measure: bool = False,
            on_bytes: Callable[[int], None] = lambda n: None) -> Report:
    names = _required_names(files)
    optional = [f.logical for r in load_manifest(files.model) for f in r.files if not f.required and f.logical not in names]
    checks = [check_file(files, n, True, verify, on_bytes) for n in names]
    checks += [c for c in (check_file(files, n, False, verify, on_bytes) for n in optional) if c.state != "missing"]
    root = _store_root(files)
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = None
    report = Report(layout=files.describe(), revision=files.revision, files=checks, free_bytes=free, mount=find_mount(root),
                    model=files.model)
    if report.mount and report.mount.kind != "local":
        report.warnings.append(f"{files.root} is on a {report.mount.kind} filesystem ({report.mount.fstype} at "
                               f"{report.mount.mountpoint}); loading reads every weight from it once")
    if measure:
        present = [c for c in checks if c.ok and c.size]
        if present:
            biggest = max(present, key=lambda c: c.size)
            report.throughput_mb_s = measure_throughput(files.path(biggest.name))
            if report.throughput_mb_s is not None and report.throughput_mb_s < SLOW_MB_S:
                report.warnings.append(
                    f"reading {biggest.name} ran at {report.throughput_mb_s:.0f} MB/s, below {SLOW_MB_S:.0f} MB/s: loading "
                    "will be slow. Stage the weights on local disk with `python -m index_tts doctor --copy-local DIR` "
                    "and start with --model-dir DIR")
    return report


def format_report(report: Report, engine: str = "") -> str:
    lines = [f"Model: {report.layout}"]
    if report.revision:
        lines.append(f"Revision: {MAIN_REPOS[report.model]} @ {report.revision}")
    for c in report.files:
        size = f"{c.size / 1e6:10.1f} MB" if c.size is not None else " " * 13
        extra = f"  ({c.detail})" if c.detail else ""
        lines.append(f"  {c.state:13s} {size}  {c.name}{'' if c.required else ' [optional]'}  <- {c.origin}{extra}")
    if report.free_bytes is not None:
        lines.append(f"Free disk: {report.free_bytes / 1e9:.1f} GB")
    if report.mount:
        lines.append(f"Storage: {report.mount.kind} ({report.mount.fstype} mounted at {report.mount.mountpoint})")
    if report.throughput_mb_s is not None:
        lines.append(f"Read throughput: {report.throughput_mb_s:.0f} MB/s")
    if engine:
        lines.append(f"Engine: {engine}")
    lines += [f"warning: {w}" for w in report.warnings]
    lines.append(f"{report.model_name} set: complete" if report.complete else f"{report.model_name} set: INCOMPLETE. {report.fix}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# staging on local disk


def copy_local(files: ModelFiles, dest: Path, log: Callable[[str], None] = print) -> ModelFiles:
    """Copy every file the model uses into `dest` as a flat model folder, one file at a time,
    sequentially; each lands under a temporary name and is renamed when whole. Files already
    there with the right size are kept."""
    dest = Path(dest)
    names = _required_names(files)
    qwen = files.path("qwen0.6bemo4-merge")
    if qwen.is_dir():
        names += [f"qwen0.6bemo4-merge/{p.relative_to(qwen).as_posix()}" for p in sorted(qwen.rglob("*")) if p.is_file()]
    for name in names:
        source, target = files.path(name), dest / name
        if not source.is_file():
            raise FileNotFoundError(f"{name} is missing in {files.describe()}; run `{FIX_DOWNLOAD}` first")
        size = source.stat().st_size
        if target.is_file() and target.stat().st_size == size:
            log(f"  kept     {name}")
            continue
        started = time.perf_counter()
        atomic_copy_file(source, target, CHUNK)
        seconds = time.perf_counter() - started
        log(f"  copied   {name} ({size / 1e6:.1f} MB, {size / 1e6 / max(seconds, 1e-6):.0f} MB/s)")
    return ModelFiles.flat(dest)
