"""The library: saved voices (and the library zip), saved presets, the user's emotion presets
and the glossary. Every method checks its names and texts (checks.py) and raises the typed
errors; the stores underneath (index_tts.storage) only keep bytes and metadata."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import soundfile as sf

from index_tts.service.checks import AudioInput, check_name, check_text
from index_tts.service.errors import Conflict, NotFound, ValidationError, named
from index_tts.service.uploads import decode_audio
from index_tts.storage import Preset, Voice, VoiceExists, atomic_write_bytes, sanitize_name
from index_tts.storage import PresetProblem as Problem

UPLOAD_FOLDER = "tmp"                  # under the data folder: uploads while a request runs
MAX_NOTE_INPUT_CHARS = 10_000          # a note, tag or reading as typed; the stores keep less
MAX_IMPORT_VOICES = 500
MAX_IMPORT_FILE_BYTES = 20 * 2**20     # one voice.wav (60 s of 48 kHz 32-bit float is 11.5 MB)
MAX_IMPORT_BYTES = 1024 * 2**20


class Library:
    """Part of the Synthesizer (a mixin): the voice library (with zip export and import), the
    saved presets, the user's emotion presets and the glossary. Uses the Synthesizer's stores
    (voices, presets, emotion_presets, glossary), data and limits."""

    def save_voice(self, name: str, audio: AudioInput, *, tags: object = (), note: object = "",
                   default_emotion: object = None, overwrite: bool = False) -> tuple[Voice, bool]:
        """Check a reference like a synthesis voice (length, silence, rate) and store it in the
        library as 16-bit WAV. Raises ValidationError naming the field; Conflict("name") when the
        name is taken and `overwrite` is false."""
        check_name(name)
        if isinstance(note, str):
            check_text(note, "note", MAX_NOTE_INPUT_CHARS)
        for tag in [tags] if isinstance(tags, str) else tags if isinstance(tags, (list, tuple)) else ():
            if isinstance(tag, str):
                check_text(tag, "tags", MAX_NOTE_INPUT_CHARS, multiline=False)
        samples, sr = decode_audio(audio, "voice", self.limits)
        buffer = io.BytesIO()
        sf.write(buffer, samples, sr, format="WAV", subtype="PCM_16")
        try:
            return self.voices.save(name, buffer.getvalue(), tags=tags, note=note,
                                    default_emotion=default_emotion, overwrite=overwrite)
        except TypeError as e:
            raise ValidationError("default_emotion", f"cannot be stored: {e}") from e
        except VoiceExists as e:
            raise Conflict("name", str(e)) from e
        except ValueError as e:
            message = str(e)
            field_name = message.split(" ", 1)[0] if message.split(" ", 1)[0] in ("tags", "note") else "name"
            raise ValidationError(field_name, message) from e

    def voice_path(self, name: str) -> Path:
        """The audio file of a saved voice, for SynthesisRequest.voice; ValidationError("voice")."""
        check_name(name, "voice")
        try:
            return self.voices.get(name).audio_path
        except FileNotFoundError as e:
            raise ValidationError("voice", str(e)) from e
        except ValueError as e:
            raise ValidationError("voice", str(e)) from e

    def export_voices(self) -> bytes:
        """The whole voice library as a zip: <name>/voice.json and <name>/voice.wav per voice."""
        voices, _ = self.voices.scan()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for voice in voices:
                archive.writestr(f"{voice.name}/voice.json", json.dumps(voice.as_dict(), ensure_ascii=False, indent=2))
                archive.write(voice.audio_path, f"{voice.name}/voice.wav")
        return buffer.getvalue()

    def import_voices(self, zip_path: str | os.PathLike, overwrite: bool = False) -> tuple[list[str], list[str]]:
        """Add the voices of a library zip; returns (imported, skipped because the name exists).

        Every member is checked before anything is written (all or nothing): only
        `<name>/voice.json` and `<name>/voice.wav` members, no paths out of the folder, sizes
        bounded, the metadata readable and the audio a usable voice. An existing voice is only
        replaced when `overwrite` is true; otherwise it is skipped and named in the result.
        """
        field_name = "voices_zip"
        try:
            archive = zipfile.ZipFile(zip_path)
        except (OSError, zipfile.BadZipFile) as e:
            raise ValidationError(field_name, f"is not a zip file ({e})") from e
        with archive:
            members = archive.infolist()
            if len(members) > 2 * MAX_IMPORT_VOICES:
                raise ValidationError(field_name, f"has {len(members)} files; a library zip holds at most {MAX_IMPORT_VOICES} voices")
            if sum(m.file_size for m in members) > MAX_IMPORT_BYTES:
                raise ValidationError(field_name, f"unpacks to more than {MAX_IMPORT_BYTES // 2**20} MB")
            found: dict[str, dict[str, bytes]] = {}
            for member in members:
                if member.is_dir():
                    continue
                parts = member.filename.split("/")
                if ("\\" in member.filename or member.filename.startswith("/") or len(parts) != 2
                        or parts[0] in ("", ".", "..") or parts[1] not in ("voice.json", "voice.wav")):
                    raise ValidationError(field_name, f"member {member.filename[:80]!r} is not <name>/voice.json or <name>/voice.wav")
                if member.file_size > MAX_IMPORT_FILE_BYTES:
                    raise ValidationError(field_name, f"member {member.filename[:80]!r} is too large")
                found.setdefault(parts[0], {})[parts[1]] = archive.read(member)
        checked = []
        for folder, files in found.items():
            if set(files) != {"voice.json", "voice.wav"}:
                raise ValidationError(field_name, f"voice {folder!r} needs both voice.json and voice.wav")
            try:
                name = sanitize_name(folder, "voice")
                meta = json.loads(files["voice.json"].decode("utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError("voice.json is not an object")
            except (UnicodeDecodeError, ValueError) as e:
                raise ValidationError(field_name, f"voice {folder!r}: {e}") from e
            if name != folder:
                raise ValidationError(field_name, f"voice folder {folder!r} is not a valid voice name")
            try:
                data, rate = sf.read(io.BytesIO(files["voice.wav"]), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError) as e:
                raise ValidationError(field_name, f"voice {folder!r}: voice.wav is not audio ({e})") from e
            try:
                samples, sr = decode_audio((rate, data), "voice", self.limits)
            except ValidationError as e:
                raise ValidationError(field_name, f"voice {folder!r}: {e}") from e
            checked.append((name, samples, sr, meta))
        if not checked:
            raise ValidationError(field_name, "holds no voices")
        imported, skipped = [], []
        for name, samples, sr, meta in checked:
            if self.voices.exists(name) and not overwrite:
                skipped.append(name)
                continue
            try:
                self.save_voice(name, (sr, samples), tags=meta.get("tags"), note=meta.get("note"),
                                default_emotion=meta.get("default_emotion"), overwrite=overwrite)
            except ValidationError as e:
                raise ValidationError(field_name, f"voice {name!r}: {e}") from e
            imported.append(name)
        return imported, skipped

    # -- the data the front ends show and edit (every method raises the typed errors) -----------

    @property
    def data_root(self) -> Path:
        """The data folder (outputs, presets, voices, history); front ends pass it to Gradio's allowed paths."""
        return self.data.root

    @property
    def upload_dir(self) -> Path:
        """Where front ends put uploads while a request runs (data/tmp; emptied at start)."""
        folder = self.data.root / UPLOAD_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def clear_uploads(self) -> None:
        """Remove uploads left by a crashed process (they belong to no request now)."""
        for stale in self.upload_dir.glob("*"):
            if stale.is_file():
                stale.unlink(missing_ok=True)

    def list_voices(self) -> tuple[list[Voice], list[Problem]]:
        """The saved voices (sorted by name) and the unreadable ones, as problems."""
        return self.voices.scan()

    def get_voice(self, name: str) -> Voice:
        check_name(name)
        with named("voice", name):
            return self.voices.get(name)

    def rename_voice(self, name: str, new_name: str, overwrite: bool = False) -> Voice:
        """Raises NotFound (name), Conflict / ValidationError (new_name)."""
        self.get_voice(name)
        check_name(new_name, "new_name")
        with named("voice", new_name, "new_name"):
            return self.voices.rename(name, new_name, overwrite=overwrite)

    def delete_voice(self, name: str) -> None:
        check_name(name)
        with named("voice", name):
            if not self.voices.delete(name):
                raise FileNotFoundError(name)

    def export_voices_to_file(self) -> Path:
        """The voice library zip written under data/exports; returns its path."""
        path = self.data.root / "exports" / f"voice-library-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        atomic_write_bytes(path, self.export_voices())
        return path

    def list_presets(self) -> tuple[list[str], list[Problem]]:
        """Saved preset names (sorted) and the unreadable ones, as problems."""
        return self.presets.scan()

    def save_preset(self, name: str, params: dict, voice: str | os.PathLike | None = None,
                    emotion_audio: str | os.PathLike | None = None) -> tuple[Preset, bool]:
        """Save a studio state (its voice and emotion clip are files, copied into the preset);
        returns it and whether one of that name was replaced."""
        check_name(name)
        for field_name, path in (("voice", voice), ("emotion_audio", emotion_audio)):
            if path is not None and not (isinstance(path, (str, os.PathLike)) and Path(path).is_file()):
                raise ValidationError(field_name, "must be an audio file that exists")
        with named("preset", name):
            return self.presets.save(name, params, voice=voice, emotion_audio=emotion_audio)

    def load_preset(self, name: str) -> Preset:
        check_name(name)
        with named("preset", name):
            return self.presets.load(name)

    def delete_preset(self, name: str) -> None:
        check_name(name)
        with named("preset", name):
            if not self.presets.delete(name):
                raise FileNotFoundError(name)

    def list_emotion_presets(self) -> list[dict]:
        """The user's emotion presets: {name, mode, weight, sliders, text, use_random}."""
        return self.emotion_presets.list()

    @property
    def emotion_presets_problem(self) -> str:
        return self.emotion_presets.problem

    def save_emotion_preset(self, name: str, mode: str, weight: float, sliders: list[float], text: str = "",
                            use_random: bool = False) -> tuple[dict, bool]:
        """Add or replace a user emotion preset; returns it and whether one was replaced.
        ValidationError("emotion_preset.<field>")."""
        check_name(name, "emotion_preset.name")
        if isinstance(text, str):
            check_text(text, "emotion_preset.text", self.limits.max_emotion_text_chars)
        try:
            return self.emotion_presets.save({"name": name, "mode": mode, "weight": weight, "sliders": sliders,
                                              "text": text, "use_random": use_random})
        except ValueError as e:
            field_name = str(e).split(" ", 1)[0].rstrip(":")
            raise ValidationError(f"emotion_preset.{field_name}", str(e)) from e

    def delete_emotion_preset(self, name: str) -> None:
        check_name(name)
        if not self.emotion_presets.delete(name):
            raise NotFound("emotion preset", name.strip())

    def list_glossary(self) -> list[tuple[str, str, str]]:
        """(term, Chinese reading, English reading) rows; see glossary_problem for an unreadable file."""
        return self.glossary.list()

    @property
    def glossary_problem(self) -> str:
        return self.glossary.problem

    def add_glossary_term(self, term: str, zh: str | None = None, en: str | None = None) -> bool:
        """Add or replace a term; returns whether one was replaced. ValidationError("glossary.<field>")."""
        for field_name, value in (("term", term), ("zh", zh), ("en", en)):
            if isinstance(value, str):
                check_text(value, f"glossary.{field_name}", MAX_NOTE_INPUT_CHARS, multiline=False)
        try:
            return self.glossary.add(term, zh, en)[1]
        except ValueError as e:
            field_name = str(e).split(" ", 1)[0].rstrip(":")
            raise ValidationError(f"glossary.{field_name}", str(e)) from e

    def remove_glossary_term(self, term: str) -> None:
        check_name(term, "glossary.term")
        if not self.glossary.remove(term):
            raise NotFound("glossary term", term.strip(), "glossary.term")
