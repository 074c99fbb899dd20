"""The studio's data folder: generated audio and saved presets, written atomically.

Layout under the data folder (default `./data`, or `$INDEX_TTS_DATA`, or `--data-dir`):

    outputs/<UTC time>_<random id>.wav     generated speech
    presets/<name>/preset.json             one saved preset (voice + every parameter)
    presets/<name>/voice.wav               its voice reference (and emotion.wav, if any)
    voices/<name>/voice.json               a saved voice: tags, note, default emotion
    voices/<name>/voice.wav                its reference audio (16-bit PCM)
    glossary.json                          custom term pronunciations {term: {"zh": .., "en": ..}}
    history/<output stem>.json             what made an output: text, settings, segment timings
    history/<output stem>.srt              its subtitles (and .lines.zip for a dialogue's lines)
    history/voices/<hash>.wav              the voice references history entries regenerate with
    emotion_presets.json                   the user's own emotion presets (mode, sliders, weight)

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


def sanitize_name(name: str, what: str = "preset") -> str:
    """Turn a user-typed name into a safe folder name, or raise ValueError.

    Letters of any script, digits, spaces, '-' and '_' are kept; anything else (slashes, dots,
    control characters) becomes '_'. The result can never be '.', '..', absolute or nested.
    """
    if not isinstance(name, str):
        raise ValueError(f"{what} name must be text")
    name = unicodedata.normalize("NFKC", name)
    cleaned = re.sub(r"[^\w\- ]", "_", name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" _-")
    cleaned = cleaned[:MAX_NAME_CHARS].strip(" _-")
    if not cleaned:
        raise ValueError(f"{what} name {name!r} has no usable characters")
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

    @property
    def voices(self) -> Path:
        return self.root / "voices"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def emotion_presets(self) -> Path:
        return self.root / "emotion_presets.json"

    def ensure(self) -> "DataDir":
        for folder in (self.outputs, self.presets, self.voices, self.history):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def remove_crash_leftovers(self) -> list[Path]:
        """Delete what a killed process can leave behind: temporary files of unfinished atomic
        writes (".<name>.<random>.tmp") and voices moved aside for deletion (".deleted-*").
        Real files are never touched. Call at start, before anything writes (one server per
        data folder). Returns what was removed."""
        removed = []
        for folder in (self.outputs, self.presets, self.voices):
            if not folder.is_dir():
                continue
            for path in folder.rglob(".*.tmp"):
                if path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
        if self.voices.is_dir():
            for trash in self.voices.glob(".deleted-*"):
                if trash.is_dir():
                    shutil.rmtree(trash, ignore_errors=True)
                    removed.append(trash)
        if removed:
            log.warning("removed %d leftover(s) of an interrupted write: %s", len(removed),
                        ", ".join(str(p.relative_to(self.root)) for p in removed[:10]))
        return removed

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
# voice library

VOICE_FILE = "voice.json"
VOICE_AUDIO = "voice.wav"
VOICE_FORMAT_VERSION = 1
MAX_VOICE_NOTE_CHARS = 1000
MAX_VOICE_TAGS = 20


class VoiceExists(FileExistsError):
    """Saving or renaming would replace another voice, and the caller did not ask to."""


@dataclass(frozen=True)
class Voice:
    """A saved reference voice. `default_emotion` is whatever the front end stores for it (e.g.
    a preset name or an emotion spec as a dict); None when it has none."""

    name: str
    audio_path: Path
    tags: tuple[str, ...] = ()
    note: str = ""
    default_emotion: Any = None
    created_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": list(self.tags), "note": self.note,
                "default_emotion": self.default_emotion, "created_at": self.created_at}


def _check_tags(tags: object) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = [t for t in tags.split(",")]
    if not isinstance(tags, (list, tuple)):
        raise ValueError(f"tags must be a list of words, got {type(tags).__name__}")
    cleaned = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"tags must be text, got {tag!r}")
        tag = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", tag)).strip()
        if any(unicodedata.category(c) in ("Cc", "Cf") for c in tag) or len(tag) > MAX_NAME_CHARS:
            raise ValueError(f"tags: {tag[:20]!r}... is not a usable tag")
        if tag and tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_VOICE_TAGS:
        raise ValueError(f"tags: at most {MAX_VOICE_TAGS} tags")
    return tuple(cleaned)


def _check_note(note: object) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ValueError(f"note must be text, got {type(note).__name__}")
    note = note.strip()
    if len(note) > MAX_VOICE_NOTE_CHARS:
        raise ValueError(f"note is too long ({len(note)} characters; at most {MAX_VOICE_NOTE_CHARS})")
    return note


class VoiceStore:
    """The voice library: one folder per voice under `root`.

    The store keeps bytes and metadata; checking that the audio is a usable voice (length,
    silence, sample rate) is the service's job, before it calls `save`. voice.json is written last,
    so a voice exists only once its audio is complete; a folder without a readable voice.json is
    reported by `scan` and skipped.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._lock = threading.Lock()  # rename/overwrite decisions are check-then-act

    def _folder(self, name: str) -> Path:
        folder = self.root / sanitize_name(name, "voice")
        if folder.resolve().parent != self.root.resolve():
            raise ValueError(f"voice name {name!r} is not allowed")
        return folder

    def exists(self, name: str) -> bool:
        return (self._folder(name) / VOICE_FILE).is_file()

    def save(self, name: str, wav_bytes: bytes, *, tags: object = (), note: object = "",
             default_emotion: Any = None, overwrite: bool = False) -> tuple[Voice, bool]:
        """Store a voice (WAV bytes) with its metadata. Returns (voice, replaced an existing one).
        Raises VoiceExists when the name is taken and `overwrite` is false."""
        tags, note = _check_tags(tags), _check_note(note)
        json.dumps(default_emotion)  # must be storable; raises TypeError otherwise
        with self._lock:
            folder = self._folder(name)
            replaced = (folder / VOICE_FILE).exists()
            if replaced and not overwrite:
                raise VoiceExists(f"a voice named {folder.name!r} already exists")
            atomic_write_bytes(folder / VOICE_AUDIO, wav_bytes)
            self._write_meta(folder, tags, note, default_emotion)
        return self.get(folder.name), replaced

    def _write_meta(self, folder: Path, tags: tuple[str, ...], note: str, default_emotion: Any,
                    created_at: str | None = None) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        document = {"format_version": VOICE_FORMAT_VERSION, "name": folder.name, "tags": list(tags), "note": note,
                    "default_emotion": default_emotion, "created_at": created_at or now, "updated_at": now}
        atomic_write_text(folder / VOICE_FILE, json.dumps(document, ensure_ascii=False, indent=2))

    def get(self, name: str) -> Voice:
        """One voice; FileNotFoundError when absent, ValueError when its files are corrupt."""
        folder = self._folder(name)
        meta, audio = folder / VOICE_FILE, folder / VOICE_AUDIO
        if not meta.is_file():
            raise FileNotFoundError(f"no voice named {folder.name!r}")
        try:
            document = json.loads(meta.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise ValueError("expected an object")
            voice = Voice(folder.name, audio, _check_tags(document.get("tags")), _check_note(document.get("note")),
                          document.get("default_emotion"), str(document.get("created_at", "")))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"voice {folder.name!r} is corrupt: {e}") from e
        if not audio.is_file():
            raise ValueError(f"voice {folder.name!r} is corrupt: {VOICE_AUDIO} is missing")
        return voice

    def update(self, name: str, *, tags: object = None, note: object = None, default_emotion: Any = ...) -> Voice:
        """Change a voice's metadata; arguments left out keep their value."""
        with self._lock:
            voice = self.get(name)
            folder = self._folder(voice.name)
            self._write_meta(folder, voice.tags if tags is None else _check_tags(tags),
                             voice.note if note is None else _check_note(note),
                             voice.default_emotion if default_emotion is ... else default_emotion, voice.created_at)
        return self.get(voice.name)

    def rename(self, old: str, new: str, overwrite: bool = False) -> Voice:
        with self._lock:
            voice = self.get(old)
            source, target = self._folder(voice.name), self._folder(new)
            if source == target:
                return voice
            if target.exists():
                if not overwrite:
                    raise VoiceExists(f"a voice named {target.name!r} already exists")
                shutil.rmtree(target)
            os.replace(source, target)  # a folder rename: atomic within the library
            self._write_meta(target, voice.tags, voice.note, voice.default_emotion, voice.created_at)
        return self.get(target.name)

    def delete(self, name: str) -> bool:
        with self._lock:
            folder = self._folder(name)
            if not folder.is_dir():
                return False
            # Move aside first so a crash mid-delete never leaves a half voice under its name.
            trash = folder.with_name(f".deleted-{folder.name}-{secrets.token_hex(4)}")
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return True

    def scan(self) -> tuple[list[Voice], list[PresetProblem]]:
        """All readable voices (sorted by name, case-insensitively) and the problems found."""
        voices: list[Voice] = []
        problems: list[PresetProblem] = []
        if not self.root.is_dir():
            return voices, problems
        for folder in sorted(self.root.iterdir(), key=lambda p: p.name.casefold()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                voices.append(self.get(folder.name))
            except (ValueError, OSError) as e:
                log.warning("skipping voice %r: %s", folder.name, e)
                problems.append(PresetProblem(folder.name, str(e)))
        return voices, problems


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


# ---------------------------------------------------------------------------------------------
# history of outputs

HISTORY_FORMAT_VERSION = 1
_HISTORY_ID = re.compile(r"^[0-9A-Za-z_]{1,80}$")


class HistoryStore:
    """One JSON record per generated output, in `root` (data/history), named by the output's stem.

    The audio stays in outputs/; a record points at it by file name. Side files (subtitles, a
    dialogue's per-line zip) share the record's stem, and `delete` removes them all with the audio.
    Voice references are kept once each under root/voices/<content hash>.wav so that an entry can
    be regenerated after the upload that made it is gone.
    """

    def __init__(self, root: str | os.PathLike, outputs: str | os.PathLike):
        self.root = Path(root)
        self.outputs = Path(outputs)

    def _record_path(self, entry_id: str) -> Path:
        if not isinstance(entry_id, str) or not _HISTORY_ID.match(entry_id):
            raise ValueError(f"history id {entry_id!r} is not valid")
        return self.root / f"{entry_id}.json"

    def side_file(self, entry_id: str, suffix: str) -> Path:
        """Where a record's subtitles (".srt") or line zip (".lines.zip") live."""
        return self._record_path(entry_id).with_suffix(suffix)

    def keep_voice(self, key: str, wav_bytes: bytes) -> str:
        """Store a voice reference once (by content hash); returns its file name under voices/."""
        name = f"{re.sub(r'[^0-9a-f]', '', key)[:32] or 'voice'}.wav"
        path = self.root / "voices" / name
        if not path.is_file():
            atomic_write_bytes(path, wav_bytes)
        return name

    def voice_file(self, name: str) -> Path:
        path = self.root / "voices" / Path(str(name)).name
        if not path.is_file():
            raise FileNotFoundError(f"the voice file {path.name} of this history entry is missing")
        return path

    def add(self, audio_path: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Write the record of the output at `audio_path`; returns it with id, audio and time."""
        entry_id = Path(audio_path).name.split(".")[0]
        document = {"format_version": HISTORY_FORMAT_VERSION, "id": entry_id, "audio": Path(audio_path).name,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        atomic_write_text(self._record_path(entry_id), json.dumps(document, ensure_ascii=False, indent=1))
        return document

    def get(self, entry_id: str) -> dict[str, Any]:
        """One record; FileNotFoundError when absent (or its audio is gone), ValueError when corrupt."""
        path = self._record_path(entry_id)
        if not path.is_file():
            raise FileNotFoundError(f"no history entry {entry_id!r}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"history entry {entry_id!r} is corrupt: {e}") from e
        if not isinstance(document, dict) or not isinstance(document.get("audio"), str):
            raise ValueError(f"history entry {entry_id!r} is corrupt: no audio file named")
        if not self.audio_path(document).is_file():
            raise FileNotFoundError(f"the audio of history entry {entry_id!r} is gone")
        return document

    def audio_path(self, record: dict[str, Any]) -> Path:
        return self.outputs / Path(record["audio"]).name

    def list(self, limit: int = 200) -> list[dict[str, Any]]:
        """Readable records, newest first (ids start with the UTC time); unreadable ones are logged and skipped."""
        if not self.root.is_dir():
            return []
        records = []
        for path in sorted(self.root.glob("*.json"), reverse=True):
            if len(records) >= limit:
                break
            try:
                records.append(self.get(path.stem))
            except (ValueError, OSError) as e:
                log.warning("skipping history entry %s: %s", path.name, e)
        return records

    def delete(self, entry_id: str) -> bool:
        """Remove a record, its audio and its side files; False when there was none."""
        path = self._record_path(entry_id)
        if not path.is_file():
            return False
        try:
            audio = json.loads(path.read_text(encoding="utf-8")).get("audio")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            audio = None
        path.unlink()  # the record first: a half-deleted entry is then simply gone from the list
        for side in self.root.glob(f"{entry_id}.*"):
            side.unlink(missing_ok=True)
        if isinstance(audio, str):
            (self.outputs / Path(audio).name).unlink(missing_ok=True)
        return True


# ---------------------------------------------------------------------------------------------
# the user's emotion presets

EMOTION_PRESET_FORMAT_VERSION = 1
MAX_EMOTION_PRESETS = 100
USER_PRESET_MODES = ("same_as_voice", "vector", "text")   # audio mode needs a clip; presets keep none


class EmotionPresetStore:
    """User emotion presets (mode, 8 slider values, weight, emotion text) in one JSON file, shown
    next to the built-in list. Saving a name that exists replaces it (names match case-insensitively)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.problem = ""
        self._lock = threading.Lock()

    def list(self) -> list[dict[str, Any]]:
        self.problem = ""
        if not self.path.is_file():
            return []
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return [self._check(p) for p in document["presets"]]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            self.problem = f"{self.path.name} is unreadable and was ignored: {e}"
            log.warning("emotion presets: %s", self.problem)
            return []

    @staticmethod
    def _check(preset: Any) -> dict[str, Any]:
        if not isinstance(preset, dict):
            raise ValueError("a preset must be an object")
        name = preset.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_CHARS \
                or any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
            raise ValueError(f"name must be 1 to {MAX_NAME_CHARS} characters of text, got {name!r}")
        mode = preset.get("mode")
        if mode not in USER_PRESET_MODES:
            raise ValueError(f"mode must be one of {', '.join(USER_PRESET_MODES)} (an emotion clip cannot be kept "
                             f"in a preset), got {mode!r}")
        sliders = preset.get("sliders")
        if not isinstance(sliders, (list, tuple)) or len(sliders) != 8 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in sliders):
            raise ValueError("sliders must be 8 numbers in [0, 1]")
        weight = preset.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ValueError(f"weight must be a number in [0, 1], got {weight!r}")
        text = preset.get("text") or ""
        if not isinstance(text, str) or len(text) > 1000:
            raise ValueError("text must be at most 1000 characters")
        return {"name": name.strip(), "mode": mode, "sliders": [float(v) for v in sliders], "weight": float(weight),
                "text": text, "use_random": bool(preset.get("use_random", False))}

    def save(self, preset: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Add or replace a preset; returns it and whether one was replaced. ValueError names the field."""
        preset = self._check(preset)
        with self._lock:
            presets = self.list()
            kept = [p for p in presets if p["name"].casefold() != preset["name"].casefold()]
            replaced = len(kept) != len(presets)
            if not replaced and len(kept) >= MAX_EMOTION_PRESETS:
                raise ValueError(f"name: there are already {MAX_EMOTION_PRESETS} presets; delete one first")
            self._save(kept + [preset])
        return preset, replaced

    def delete(self, name: str) -> bool:
        with self._lock:
            presets = self.list()
            kept = [p for p in presets if not isinstance(name, str) or p["name"].casefold() != name.strip().casefold()]
            if len(kept) == len(presets):
                return False
            self._save(kept)
        return True

    def _save(self, presets: list[dict[str, Any]]) -> None:
        document = {"format_version": EMOTION_PRESET_FORMAT_VERSION, "presets": presets}
        atomic_write_text(self.path, json.dumps(document, ensure_ascii=False, indent=2))
