"""`python -m index_tts download`: fetch what manifest.json lists into cache_hub/ with huggingface_hub.

For each repo: ask the server for the revision's file list with sizes and hashes (one
`/api/models/{repo}/revision/{rev}` call), then `hf_hub_download` each wanted file pinned to
that commit. huggingface_hub writes the standard cache layout, checks every file's size against
the server's, resumes a dropped connection with an HTTP Range request, and honours HF_ENDPOINT,
HF_TOKEN and the usual proxy variables. Only after every file of a repo is in place does
`refs/<revision>` point at the commit, so the app never sees half a snapshot.

A file already in the cache is kept when its size matches the listing (and, with --verify, its
hash); otherwise it is fetched again. A run stopped halfway keeps every finished file; the next
run fetches only the rest.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from index_tts.fileio import atomic_write_text
from index_tts.model_store.integrity import Expected, check_hash, record_json, record_path
from index_tts.model_store.layout import MAIN_REPOS, MODELS, ManifestRepo, ModelFiles, load_manifest, resolve_commit

# Seconds: every request has a timeout (huggingface_hub also reads HF_HUB_ETAG_TIMEOUT and
# HF_HUB_DOWNLOAD_TIMEOUT; the latter bounds each read of a file body).
LISTING_TIMEOUT_S = 15.0
HEAD_TIMEOUT_S = 15.0

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 3, 130
FIX_COMMAND = "python -m index_tts download"


class DownloadError(RuntimeError):
    """A repo could not be listed or a file could not be fetched; the message says which and why."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RemoteFile:
    path: str
    expected: Expected
    state: str = "fetch"  # "present", "fetch" or "re-fetch: <why>"


@dataclass(frozen=True)
class RepoPlan:
    repo: ManifestRepo
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]

    @property
    def to_fetch(self) -> list[RemoteFile]:
        return [f for f in self.files if f.state != "present"]


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _explain(e: Exception, repo: str) -> DownloadError:
    """A huggingface_hub / network / disk exception -> one sentence that says what to do."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    if isinstance(e, GatedRepoError):
        return DownloadError(f"{repo} is gated: accept its terms on the Hub and set HF_TOKEN ({e})")
    if isinstance(e, RevisionNotFoundError):
        return DownloadError(f"{repo} has no revision like that ({e}); check --revision")
    if isinstance(e, RepositoryNotFoundError):
        return DownloadError(f"{repo} was not found at {_endpoint()} (a private mirror may need HF_TOKEN): {e}")
    if isinstance(e, HfHubHTTPError):
        return DownloadError(f"{_endpoint()} refused {repo}: {e}")
    if isinstance(e, (httpx2.TransportError, LocalEntryNotFoundError, ConnectionError, TimeoutError)):
        return DownloadError(
            f"cannot reach {_endpoint()} for {repo} ({type(e).__name__}: {e}). Check the network, or set HF_ENDPOINT "
            f"to a mirror and HTTPS_PROXY to your proxy (docs/models.md), then run `{FIX_COMMAND}` again.",
            EXIT_UNREACHABLE)
    # Disk full, a read-only cache_hub, a size mismatch after the transfer, ...
    return DownloadError(f"{repo}: {type(e).__name__}: {e}; run `{FIX_COMMAND}` again once that is fixed")


def _wanted(repo: ManifestRepo, listing: dict[str, Expected]) -> dict[str, Expected]:
    missing = [f.path for f in repo.files if f.required and f.path not in listing]
    if missing:
        raise DownloadError(f"{repo.id} has no {', '.join(missing)} at this revision; the manifest expects it")
    if repo.all_files:
        return listing
    return {f.path: listing[f.path] for f in repo.files if f.path in listing}


def _local_state(snapshot: Path, path: str, expected: Expected, verify: bool) -> str:
    local = snapshot / path
    if not local.exists():
        return "fetch"
    size = local.stat().st_size
    if expected.size is not None and size != expected.size:
        return f"re-fetch: {size} bytes, the server has {expected.size}"
    if verify and (why := check_hash(local, expected)):
        return f"re-fetch: {why}"
    return "present"


def plan_repo(cache_hub: Path, repo: ManifestRepo, revision: str, verify: bool = False) -> RepoPlan:
    """List `repo` at `revision` on the server and compare with the cache (one request)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo.id, revision=revision, files_metadata=True, timeout=LISTING_TIMEOUT_S)
    except Exception as e:  # every failure becomes a sentence naming the repo and the fix
        raise _explain(e, repo.id) from e
    listing = {
        s.rfilename: Expected(size=s.lfs.size if s.lfs else s.size, sha256=s.lfs.sha256 if s.lfs else None,
                              git_sha1=None if s.lfs else s.blob_id)
        for s in info.siblings or []
    }
    snapshot = cache_hub / repo.folder / "snapshots" / info.sha
    files = tuple(RemoteFile(path, e, _local_state(snapshot, path, e, verify)) for path, e in sorted(_wanted(repo, listing).items()))
    return RepoPlan(repo, revision, info.sha, files)


def _bar_class(total_bar):
    """A tqdm class for huggingface_hub's per-file bar that also advances the total bar."""
    from tqdm.auto import tqdm

    class FileBar(tqdm):
        def update(self, n=1):
            total_bar.update(n)
            return super().update(n)

    return FileBar


def fetch_repo(cache_hub: Path, plan: RepoPlan, total_bar, out: TextIO) -> None:
    from huggingface_hub import hf_hub_download

    for f in plan.to_fetch:
        if f.state.startswith("re-fetch"):
            print(f"{plan.repo.id}: {f.path}: {f.state}", file=out)
        try:
            got = Path(hf_hub_download(plan.repo.id, f.path, revision=plan.commit, cache_dir=cache_hub,
                                       etag_timeout=HEAD_TIMEOUT_S, force_download=f.state != "fetch",
                                       tqdm_class=_bar_class(total_bar)))
        except Exception as e:
            raise _explain(e, f"{plan.repo.id}: {f.path}") from e
        if f.expected.size is not None and got.stat().st_size != f.expected.size:
            raise DownloadError(f"{plan.repo.id}: {f.path} arrived with {got.stat().st_size} bytes, "
                                f"the listing says {f.expected.size}; run `{FIX_COMMAND}` again")


def finish_repo(cache_hub: Path, plan: RepoPlan) -> None:
    """Write the download record, then point refs/<revision> at the commit (each only if it changes)."""
    repo_dir = cache_hub / plan.repo.folder
    record = record_json(plan.repo.id, plan.revision, plan.commit, _endpoint(), {f.path: f.expected for f in plan.files})
    path = record_path(repo_dir, plan.commit)
    try:
        if not path.is_file() or path.read_text(encoding="utf-8") != record:
            atomic_write_text(path, record)
        if plan.revision != plan.commit and resolve_commit(cache_hub, plan.repo, plan.revision) != plan.commit:
            # Last: a revision names a commit only once all of its files are here.
            atomic_write_text(repo_dir / "refs" / plan.revision, plan.commit)
    except OSError as e:
        raise DownloadError(f"cannot write to the model store {repo_dir}: {e.strerror or e}") from e


def _human(n: float | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _models(model: str) -> tuple[str, ...]:
    return MODELS if model == "both" else (model,)


def revisions_for(revision: str | None, model: str = "2") -> list[tuple[ManifestRepo, str]]:
    """Each repo `model` needs ("2", "2.5" or "both"; shared repos once) with the revision to
    fetch: `revision` applies to the model's own repo (IndexTeam/IndexTTS-2 or -2.5)."""
    mains = {MAIN_REPOS[m] for m in _models(model)}
    return [(r, revision if (revision and r.id in mains) else r.revision) for r in load_manifest(model)]


def complete_locally(cache_hub: Path, revision: str | None, model: str = "2") -> bool:
    """Every required file of `model` is in the cache at the chosen revisions (no network)."""
    for m in _models(model):
        files = ModelFiles.hub(cache_hub, revision, m)
        if not all(files.path(f.logical).is_file() for r in load_manifest(m) for f in r.files if f.required):
            return False
    return True


def download(cache_hub: Path, revision: str | None = None, *, dry_run: bool = False, verify: bool = False,
             if_missing: bool = False, out: TextIO = sys.stdout, model: str = "2") -> int:
    """Fetch (or with dry_run, list) what the cache lacks for `model` ("2", "2.5" or "both").
    Returns an exit code; messages go to `out`."""
    cache_hub = Path(cache_hub)
    if if_missing and complete_locally(cache_hub, revision, model):
        print(f"All model files are present in {cache_hub}; nothing to fetch (no network used).", file=out)
        return EXIT_OK
    print(f"Model store: {cache_hub.resolve()}   server: {_endpoint()}", file=out)
    try:
        plans = [plan_repo(cache_hub, repo, rev, verify) for repo, rev in revisions_for(revision, model)]
    except DownloadError as e:
        print(f"error: {e}", file=out)
        return e.exit_code

    fetch_bytes = 0
    for plan in plans:
        print(f"{plan.repo.id}@{plan.revision} ({plan.commit[:10]}):", file=out)
        for f in plan.files:
            print(f"  {f.state.split(':')[0]:9s} {_human(f.expected.size):>10s}  {f.path}", file=out)
            fetch_bytes += (f.expected.size or 0) if f.state != "present" else 0
    count = sum(len(p.to_fetch) for p in plans)
    print(f"To fetch: {count} files, {_human(fetch_bytes)}.", file=out)
    if dry_run:
        return EXIT_OK
    try:
        if count == 0:
            for plan in plans:  # e.g. a cache copied without refs/: point them
                finish_repo(cache_hub, plan)
            print("Nothing to fetch: every file is present and the right size.", file=out)
            return EXIT_OK
        _fetch_all(cache_hub, plans, fetch_bytes, out)
    except DownloadError as e:
        print(f"\nerror: {e}", file=out)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished files are kept; `{FIX_COMMAND}` fetches the rest", file=out)
        return EXIT_INTERRUPTED
    print(f"Done: {count} files in {cache_hub}.", file=out)
    return EXIT_OK


def _fetch_all(cache_hub: Path, plans: list[RepoPlan], fetch_bytes: int, out: TextIO) -> None:
    from tqdm.auto import tqdm

    try:
        cache_hub.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the model store {cache_hub}: {e.strerror or e}") from e
    with tqdm(total=fetch_bytes, unit="B", unit_scale=True, desc="total", position=0,
              disable=os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1") as total_bar:
        for plan in plans:
            fetch_repo(cache_hub, plan, total_bar, out)
            finish_repo(cache_hub, plan)
