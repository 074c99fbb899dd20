"""The studio's data folder: generated audio and saved presets, written atomically.

Layout under the data folder (default `./data`, or `$INDEX_TTS_DATA`, or `--data-dir`):

    outputs/<UTC time>_<random id>.wav     generated speech
    presets/<name>/preset.json             one saved preset (voice + every parameter)
    presets/<name>/voice.wav               its voice reference (and emotion.wav, if any)
    glossary.json                          custom term pronunciations {term: {"zh": .., "en": ..}}

Every write goes to a temporary file in the destination folder, is fsync'ed, then moved into
place with `os.replace`, so a crash never leaves a half-written file under a real name.
Pure standard library: no numpy, no torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATA_ENV = "INDEX_TTS_DATA"
PRESET_FILE = "preset.json"
PRESET_FORMAT_VERSION = 1
MAX_NAME_CHARS = 64
GLOSSARY_FILE = "glossary.json"
GLOSSARY_FORMAT_VERSION = 1
MAX_GLOSSARY_CHARS = 100
MAX_GLOSSARY_TERMS = 1000


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_ENV) or "data")


# ---------------------------------------------------------------------------------------------
# atomic writes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def unique_output_name(suffix: str = ".wav") -> str:
    """A name no other output will get: UTC time to the microsecond plus a random id.

    The time makes names sort chronologically; the random part keeps two requests in the same
    microsecond (or two processes sharing a folder) apart.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    return f"{stamp}_{secrets.token_hex(4)}{suffix}"


# ---------------------------------------------------------------------------------------------
# names


def sanitize_name(name: str) -> str:
    """Turn a user-typed preset name into a safe folder name, or raise ValueError.

    Letters of any script, digits, spaces, '-' and '_' are kept; anything else (slashes, dots,
    control characters) becomes '_'. The result can never be '.', '..', absolute or nested.
    """
    if not isinstance(name, str):
        raise ValueError("preset name must be text")
    name = unicodedata.normalize("NFKC", name)
    cleaned = re.sub(r"[^\w\- ]", "_", name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" _-")
    cleaned = cleaned[:MAX_NAME_CHARS].strip(" _-")
    if not cleaned:
        raise ValueError(f"preset name {name!r} has no usable characters")
    return cleaned


# ---------------------------------------------------------------------------------------------
# data folder


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def presets(self) -> Path:
        return self.root / "presets"

    def ensure(self) -> "DataDir":
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.presets.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def glossary(self) -> Path:
        return self.root / GLOSSARY_FILE

    def new_output_path(self, suffix: str = ".wav") -> Path:
        return self.outputs / unique_output_name(suffix)


# ---------------------------------------------------------------------------------------------
# presets


@dataclass
class Preset:
    """A saved studio state. `params` is whatever the UI stores (emotion + generation settings);
    audio paths point into the preset's own folder and are None when not saved."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    voice_path: Path | None = None
    emotion_audio_path: Path | None = None


@dataclass(frozen=True)
class PresetProblem:
    name: str
    message: str


class PresetStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _folder(self, name: str) -> Path:
        folder = self.root / sanitize_name(name)
        # Defence in depth: sanitize_name already forbids separators and dots.
        if folder.resolve().parent != self.root.resolve():
            raise ValueError(f"preset name {name!r} is not allowed")
        return folder

    def save(
        self,
        name: str,
        params: dict[str, Any],
        voice: str | os.PathLike | None = None,
        emotion_audio: str | os.PathLike | None = None,
    ) -> tuple[Preset, bool]:
        """Save (or overwrite) a preset. Returns the stored preset and whether one was replaced."""
        folder = self._folder(name)
        replaced = (folder / PRESET_FILE).exists()
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str | None] = {"voice": None, "emotion_audio": None}
        for key, source, target in (("voice", voice, "voice.wav"), ("emotion_audio", emotion_audio, "emotion.wav")):
            dest = folder / target
            if source is not None:
                source = Path(source)
                if source.resolve() != dest.resolve():
                    atomic_write_bytes(dest, source.read_bytes())
                files[key] = target
            elif dest.exists():
                dest.unlink()  # a stale file from the preset this one overwrites
        document = {
            "format_version": PRESET_FORMAT_VERSION,
            "name": folder.name,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "params": params,
            "files": files,
        }
        # preset.json last: a preset counts as saved only once its audio is in place.
        atomic_write_text(folder / PRESET_FILE, json.dumps(document, ensure_ascii=False, indent=2))
        return self.load(folder.name), replaced

    def load(self, name: str) -> Preset:
        """Load one preset; raises FileNotFoundError if absent, ValueError if corrupt."""
        folder = self._folder(name)
        path = folder / PRESET_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no preset named {folder.name!r}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"preset {folder.name!r} is corrupt: {e}") from e
        if not isinstance(document, dict) or not isinstance(document.get("params"), dict):
            raise ValueError(f"preset {folder.name!r} is corrupt: missing 'params'")
        files = document.get("files") or {}
        if not isinstance(files, dict):
            raise ValueError(f"preset {folder.name!r} is corrupt: bad 'files'")

        def audio(key: str) -> Path | None:
            rel = files.get(key)
            if not rel:
                return None
            p = folder / Path(str(rel)).name  # never follow a path out of the preset folder
            if not p.is_file():
                log.warning("preset %r: %s file %s is missing; ignored", folder.name, key, p.name)
                return None
            return p

        return Preset(folder.name, document["params"], audio("voice"), audio("emotion_audio"))

    def delete(self, name: str) -> bool:
        folder = self._folder(name)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder)
        return True

    def scan(self) -> tuple[list[str], list[PresetProblem]]:
        """All loadable preset names (sorted) and the problems found; corrupt presets are skipped."""
        names: list[str] = []
        problems: list[PresetProblem] = []
        if not self.root.is_dir():
            return names, problems
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                self.load(folder.name)
            except (ValueError, OSError) as e:
                log.warning("skipping preset %r: %s", folder.name, e)
                problems.append(PresetProblem(folder.name, str(e)))
                continue
            names.append(folder.name)
        return names, problems

    def names(self) -> list[str]:
        return self.scan()[0]


# ---------------------------------------------------------------------------------------------
# custom term pronunciations


def _check_glossary_text(value: object, field_name: str, required: bool) -> str:
    """Strip and check one term or reading; raise ValueError starting with the field's name."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be text, got {type(value).__name__}")
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        if required:
            raise ValueError(f"{field_name} is empty")
        return value
    if len(value) > MAX_GLOSSARY_CHARS:
        raise ValueError(f"{field_name} is too long ({len(value)} characters; at most {MAX_GLOSSARY_CHARS})")
    # Control characters (newlines, tabs, NUL...) would change how the text is segmented or break
    # the table; they have no place in a word or its reading.
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise ValueError(f"{field_name} must not contain control characters")
    return value


class GlossaryStore:
    """Custom term pronunciations, kept in one JSON file in the data folder.

    A term has a Chinese reading (used on the Chinese text path), an English reading (English
    path), or both; a missing reading leaves the term as written on that path. Terms match
    case-insensitively, so adding "gpu" replaces an existing "GPU". A corrupt file is logged,
    reported by `problem`, and read as empty: the studio keeps working and the next save
    replaces it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.problem = ""  # why the file was not readable at the last `load`, else ""
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict[str, str]]:
        """{term: {"zh": reading, "en": reading}} with only non-empty readings, sorted by term."""
        self.problem = ""
        if not self.path.is_file():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            terms = document["terms"] if isinstance(document, dict) and "terms" in document else document
            if not isinstance(terms, dict):
                raise ValueError("expected an object of terms")
            glossary = {}
            for term, readings in terms.items():
                if isinstance(readings, str):  # {term: reading}: one reading for both paths
                    readings = {"zh": readings, "en": readings}
                glossary.update(self._entry(term, readings.get("zh"), readings.get("en")))
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError) as e:
            self.problem = f"{self.path.name} is unreadable and was ignored: {e}"
            log.warning("glossary: %s", self.problem)
            return {}
        return dict(sorted(glossary.items(), key=lambda kv: kv[0].casefold()))

    def list(self) -> list[tuple[str, str, str]]:
        """(term, zh reading, en reading) rows for a table."""
        return [(term, r.get("zh", ""), r.get("en", "")) for term, r in self.load().items()]

    def add(self, term: str, zh: str | None = None, en: str | None = None) -> tuple[dict[str, dict[str, str]], bool]:
        """Add or replace a term; returns the new glossary and whether a term was replaced."""
        entry = self._entry(term, zh, en)
        (term,) = entry
        with self._lock:
            glossary = self.load()
            same = [t for t in glossary if t.casefold() == term.casefold()]
            for t in same:
                del glossary[t]
            if not same and len(glossary) >= MAX_GLOSSARY_TERMS:
                raise ValueError(f"term: the glossary is full ({MAX_GLOSSARY_TERMS} terms)")
            glossary.update(entry)
            self._save(glossary)
        return self.load(), bool(same)

    def remove(self, term: str) -> bool:
        """Remove a term (case-insensitively); False when it was not there."""
        if not isinstance(term, str) or not term.strip():
            return False
        key = unicodedata.normalize("NFC", term).strip().casefold()
        with self._lock:
            glossary = self.load()
            kept = {t: r for t, r in glossary.items() if t.casefold() != key}
            if len(kept) == len(glossary):
                return False
            self._save(kept)
        return True

    @staticmethod
    def _entry(term: object, zh: object, en: object) -> dict[str, dict[str, str]]:
        term = _check_glossary_text(term, "term", required=True)
        readings = {"zh": _check_glossary_text(zh, "zh", required=False), "en": _check_glossary_text(en, "en", required=False)}
        readings = {lang: r for lang, r in readings.items() if r}
        if not readings:
            raise ValueError("zh: give a Chinese or an English reading (or both)")
        return {term: readings}

    def _save(self, glossary: dict[str, dict[str, str]]) -> None:
        ordered = dict(sorted(glossary.items(), key=lambda kv: kv[0].casefold()))
        document = {"format_version": GLOSSARY_FORMAT_VERSION, "terms": ordered}
        atomic_write_text(self.path, json.dumps(document, ensure_ascii=False, indent=2))
