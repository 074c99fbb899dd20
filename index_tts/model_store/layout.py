"""Where each file of the model lives: logical name -> real path, in a hub cache or a flat folder.

The engine asks for files by their logical names (`gpt.pth`, `w2v_bert/config.json`, `bigvgan`),
the names of the flat layout in engines/indextts2.py. `ModelFiles` answers with a real path:

- a flat model directory (`--model-dir`): `model_dir / name`;
- a Hugging Face hub cache (`cache_hub/`): the snapshot folder of the repo that provides the name,
  e.g. `semantic_codec_model.safetensors` -> `models--amphion--MaskGCT/snapshots/<commit>/
  semantic_codec/model.safetensors`. Routes come from manifest.json.

Reading a hub cache needs no network and writes nothing (no locks): revisions are resolved from
`refs/<revision>` files, as huggingface_hub resolves them offline. Torch-free and cheap.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
DEFAULT_CACHE_HUB = "cache_hub"
LEGACY_FLAT_DIR = "IndexTTS-2"  # before the hub layout, weights sat in cache_hub/IndexTTS-2/
MAIN_REPO = "IndexTeam/IndexTTS-2"
# Each model's own repo (`--revision` applies to it); the other repos it needs are shared.
MAIN_REPOS = {"2": MAIN_REPO, "2.5": "IndexTeam/IndexTTS-2.5"}
MODELS = tuple(MAIN_REPOS)
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Written next to a repo's snapshots by `download`: the server's size and hash of every file.
RECORD_DIR = "index_tts"


@dataclass(frozen=True)
class ManifestFile:
    path: str               # path inside the repo
    logical: str            # name the engine asks for
    required: bool
    size: int | None        # expected bytes (approximate unless size_exact)
    size_exact: bool
    sha256: str | None      # reference hash, when one is known


@dataclass(frozen=True)
class ManifestRepo:
    id: str
    revision: str
    mount: str | None       # folder the whole repo appears as ("" = top level, None = named files only)
    all_files: bool         # fetch every file of the repo, not only `files`
    files: tuple[ManifestFile, ...]
    models: tuple[str, ...] = ("2",)  # the models that need it ("2", "2.5")

    @property
    def folder(self) -> str:
        return "models--" + self.id.replace("/", "--")


def load_manifest(model: str = "2") -> tuple[ManifestRepo, ...]:
    """The repos `model` ("2", "2.5", or "both") needs, in manifest order."""
    if model != "both" and model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)} or both, got {model!r}")
    return tuple(r for r in _all_repos() if model == "both" or model in r.models)


@lru_cache(maxsize=1)
def _all_repos() -> tuple[ManifestRepo, ...]:
    data = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    repos = []
    for r in data["repos"]:
        mount = r.get("mount")
        files = tuple(
            ManifestFile(path=f["path"], logical=f.get("as") or _join(mount, f["path"]), required=bool(f["required"]),
                         size=f.get("size"), size_exact=bool(f.get("size_exact", False)), sha256=f.get("sha256"))
            for f in r["files"]
        )
        repos.append(ManifestRepo(id=r["id"], revision=r["revision"], mount=mount, all_files=bool(r.get("all_files")), files=files,
                                  models=tuple(r.get("models", ("2",)))))
    return tuple(repos)


def _join(mount: str | None, path: str) -> str:
    return f"{mount}/{path}" if mount else path


def default_cache_hub() -> Path:
    """`$INDEX_TTS_CACHE_HUB`, else ./cache_hub (a symlink in its place is fine)."""
    return Path(os.environ.get("INDEX_TTS_CACHE_HUB") or DEFAULT_CACHE_HUB)


def resolve_commit(cache_hub: Path, repo: ManifestRepo, revision: str) -> str | None:
    """The commit a revision names in this cache (a commit hash names itself), or None."""
    repo_dir = Path(cache_hub) / repo.folder
    if COMMIT_RE.match(revision):
        return revision if (repo_dir / "snapshots" / revision).is_dir() else None
    try:
        commit = (repo_dir / "refs" / revision).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return commit if COMMIT_RE.match(commit) and (repo_dir / "snapshots" / commit).is_dir() else None


@dataclass(frozen=True)
class RepoState:
    """One repo as the cache holds it."""

    repo: ManifestRepo
    revision: str
    commit: str | None      # None: this revision is not in the cache

    def describe(self) -> str:
        at = self.commit[:10] if self.commit else "not downloaded"
        return f"{self.repo.id}@{self.revision} ({at})"


@dataclass(frozen=True)
class Route:
    prefix: str        # logical file or folder name ("" = everything else)
    target: Path       # its real path
    repo: str = ""     # the repo providing it (hub only)
    snapshot: Path | None = None


@dataclass(frozen=True)
class ModelFiles:
    """Logical file name -> real path. Build with `flat()` or `hub()`."""

    kind: str                               # "flat" or "hub"
    root: Path                              # the flat folder, or cache_hub
    routes: tuple[Route, ...] = ()          # longest prefix first
    repos: tuple[RepoState, ...] = field(default=())
    model: str = "2"                        # hub: the model whose repos are routed ("2", "2.5")

    @classmethod
    def flat(cls, model_dir: str | os.PathLike, model: str = "2") -> "ModelFiles":
        return cls(kind="flat", root=Path(model_dir), routes=(Route("", Path(model_dir)),), model=model)

    @classmethod
    def hub(cls, cache_hub: str | os.PathLike, revision: str | None = None, model: str = "2") -> "ModelFiles":
        """`model`'s files ("2": IndexTTS2, "2.5": IndexTTS-2.5) in the hub cache. `revision` picks
        that model's own repo revision; the other (shared) repos use the manifest's."""
        cache_hub = Path(cache_hub)
        routes, states = [], []
        for repo in load_manifest(model):
            rev = revision if (revision and repo.id == MAIN_REPOS[model]) else repo.revision
            commit = resolve_commit(cache_hub, repo, rev)
            states.append(RepoState(repo, rev, commit))
            # An unresolved revision routes into a folder that does not exist: its files read as missing.
            snapshot = cache_hub / repo.folder / "snapshots" / (commit or f"{rev}-not-downloaded")
            if repo.mount is not None:
                routes.append(Route(repo.mount, snapshot, repo.id, snapshot))
            routes += [Route(f.logical, snapshot / f.path, repo.id, snapshot) for f in repo.files
                       if repo.mount is None or f.logical != _join(repo.mount, f.path)]
        routes.sort(key=lambda r: len(r.prefix), reverse=True)
        return cls(kind="hub", root=cache_hub, routes=tuple(routes), repos=tuple(states), model=model)

    def _route(self, name: str) -> tuple[Route, Path]:
        name = name.strip("/")
        for route in self.routes:
            if name == route.prefix:
                return route, route.target
            if route.prefix == "" or name.startswith(route.prefix + "/"):
                return route, route.target / name[len(route.prefix):].lstrip("/")
        raise KeyError(f"no route for {name!r}")  # unreachable: every layout has a "" route

    def path(self, name: str) -> Path:
        """The real path of logical file or folder `name`."""
        return self._route(name)[1]

    def __truediv__(self, name: str) -> Path:
        """`files / "gpt.pth"`: the same as path(), so code written for a folder reads unchanged."""
        return self.path(name)

    def origin(self, name: str) -> str:
        """Where `name` comes from, in words: repo and path inside it, or the file in the flat folder."""
        route, real = self._route(name)
        if route.snapshot is None:
            return str(real)
        return f"{route.repo}: {real.relative_to(route.snapshot).as_posix()}"

    def describe(self) -> str:
        if self.kind == "flat":
            return f"model folder {self.root}"
        return f"{self.root} ({self._main().describe()})"

    def _main(self) -> RepoState:
        return next(s for s in self.repos if s.repo.id == MAIN_REPOS[self.model])

    @property
    def revision(self) -> str:
        """The active revision and commit of the model's own repo ('' for a flat folder)."""
        if self.kind == "flat":
            return ""
        main = self._main()
        return f"{main.revision} ({main.commit[:10]})" if main.commit else f"{main.revision} (not downloaded)"


def open_model_files(model_dir: str | os.PathLike | None = None, cache_hub: str | os.PathLike | None = None,
                     revision: str | None = None, model: str = "2") -> ModelFiles:
    """The layout the app loads `model` from: `model_dir` (flat) when given, else the hub cache.

    A cache_hub that still holds the old flat `IndexTTS-2/` folder, and no hub snapshot of it,
    keeps loading IndexTTS2 from that folder.
    """
    if model_dir is not None:
        return ModelFiles.flat(model_dir, model)
    cache_hub = Path(cache_hub) if cache_hub is not None else default_cache_hub()
    files = ModelFiles.hub(cache_hub, revision, model)
    if model != "2":
        return files
    legacy = cache_hub / LEGACY_FLAT_DIR
    main = next(s for s in files.repos if s.repo.id == MAIN_REPO)
    if main.commit is None and not revision and (legacy / "config.yaml").is_file():
        return ModelFiles.flat(legacy)
    return files


def as_model_files(model: "ModelFiles | str | os.PathLike") -> ModelFiles:
    """Accept a ModelFiles or a flat folder path (tests, fixtures and --model-dir pass paths)."""
    return model if isinstance(model, ModelFiles) else ModelFiles.flat(model)
