"""Long-form projects: a book's chapters rendered segment by segment, resumable, exported as
chapter files, one audiobook with chapter markers and a chapter SRT.

A project is a folder of the data dir, projects/<name>/:
    project.json   the manifest (atomic): title, defaults (voice, emotion, generation, seed), chapters
    clips/         the rendered segments, a ClipStore (`<key>.wav`)
    voices/        a reference the project keeps itself (a voice given as a file, `@<file>`)
    export/        the last export (unless the caller names another folder)

Segments are clips (clips.py): a segment's key hashes its text, voice, emotion, generation and
seed, so a render renders only the keys the store lacks. That is resuming after a pause, a
cancel, a crash or a restart, and that is re-rendering after an edit: only the segments whose
text or settings changed. A segment's seed comes from the project's seed and its own text (not
its position), so an edit elsewhere does not reseed it, and the same seed gives the same audio.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.fileio import atomic_write_bytes, atomic_write_json, remove_temp_leftovers
from index_tts.service.audiobook import write_book
from index_tts.service.books import check_chapter_text, read_book, split_segments
from index_tts.service.checks import AudioInput, check_file_format, check_name, check_number
from index_tts.service.clips import Clip, ClipStore, LocalRunner, Runner, make_clip, render_missing
from index_tts.service.errors import Cancelled, Conflict, NotFound, ValidationError, rethrow_named
from index_tts.service.uploads import decode_audio
from index_tts.storage import sanitize_name

PROJECTS_FOLDER = "projects"
MANIFEST = "project.json"
OWN_VOICE = "@"                      # a voice name starting so is a file in the project's voices/
UNCHANGED = object()                 # an edit argument left as it is
# A render's state: rendering, then done, paused, cancelled or failed; idle when none ran here.
STATES = ("idle", "rendering", "paused", "cancelled", "done", "failed")


@dataclass(frozen=True)
class ChapterProgress:
    title: str
    done: int
    total: int


@dataclass(frozen=True)
class ProjectProgress:
    state: str
    chapters: list[ChapterProgress]
    message: str = ""
    error: str = ""

    @property
    def done(self) -> int:
        return sum(c.done for c in self.chapters)

    @property
    def total(self) -> int:
        return sum(c.total for c in self.chapters)


@dataclass(frozen=True)
class Chapter:
    title: str
    text: str
    voice: str | None = None                 # None: the project's
    emotion: EmotionSpec | None = None
    generation: dict = field(default_factory=dict)   # GenerationParams fields that differ from the project's


@dataclass(frozen=True)
class Project:
    name: str
    title: str
    source: str
    voice: str
    emotion: EmotionSpec
    generation: GenerationParams     # its seed is None: `seed` below seeds every segment
    seed: int
    chapters: list[Chapter]

    def record(self) -> dict:
        return {"version": 1, "title": self.title, "source": self.source, "voice": self.voice,
                "emotion": self.emotion.to_record(), "generation": asdict(self.generation), "seed": self.seed,
                "chapters": [{"title": c.title, "text": c.text, "voice": c.voice,
                              "emotion": c.emotion.to_record() if c.emotion else None, "generation": c.generation}
                             for c in self.chapters]}

    @classmethod
    def from_record(cls, name: str, r: dict) -> Project:
        return cls(name, r["title"], r["source"], r["voice"], EmotionSpec.from_record(r["emotion"]),
                   GenerationParams(**r["generation"]), int(r["seed"]),
                   [Chapter(c["title"], c["text"], c.get("voice"),
                            EmotionSpec.from_record(c["emotion"]) if c.get("emotion") else None, dict(c.get("generation") or {}))
                    for c in r["chapters"]])


@dataclass(frozen=True)
class RenderReport:
    rendered: int        # segments rendered now
    kept: int            # segments already rendered before (never redone)
    total: int           # distinct segments of the project


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    chapter_files: list[Path]
    book: Path
    srt: Path
    duration_s: float


def segment_seed(project_seed: int, text: str) -> int:
    """A segment's seed: from the project's seed and the segment's text, in [0, 2^32)."""
    return int.from_bytes(hashlib.sha256(f"{project_seed}\n{text}".encode()).digest()[:4], "big")


def check_project_name(name: object) -> str:
    """A project name is a folder name as typed: letters, digits, spaces, '-' and '_' only, so
    '..', slashes and other path tricks are refused rather than rewritten."""
    check_name(name)
    try:
        clean = sanitize_name(name, "project")
    except ValueError as e:
        raise ValidationError("name", str(e)) from e
    if clean != name:
        raise ValidationError("name", f"{name!r} may hold only letters, digits, spaces, '-' and '_' "
                                      f"(not starting or ending with them), e.g. {clean!r}")
    return name


class _Job:
    """A render in progress (or its last outcome), as the progress readers see it."""

    def __init__(self, chapters: list[tuple[str, set[str]]], done: set[str], cancel: threading.Event | None):
        self.cancel = cancel or threading.Event()
        self.stop_as = "cancelled"
        self.state, self.message, self.error = "rendering", "starting", ""
        self.chapters = chapters             # (title, its segment keys)
        self.done = set(done)
        self.lock = threading.Lock()

    def snapshot(self) -> ProjectProgress:
        with self.lock:
            return ProjectProgress(self.state, [ChapterProgress(t, len(keys & self.done), len(keys)) for t, keys in self.chapters],
                                   self.message, self.error)


class Projects:
    """Part of the Synthesizer (a mixin): long-form projects. Uses its data, limits, job(),
    voice_path() and the clips' render path."""

    _jobs_lock = threading.RLock()

    # -- storage ------------------------------------------------------------------------------

    @property
    def _project_jobs(self) -> dict[str, _Job]:
        with Projects._jobs_lock:
            return self.__dict__.setdefault("_project_jobs_", {})

    def _project_folder(self, name: str) -> Path:
        return self.data.root / PROJECTS_FOLDER / check_project_name(name)

    def _load_project(self, name: str) -> Project:
        folder = self._project_folder(name)
        try:
            record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise NotFound("project", name) from e
        try:
            return Project.from_record(name, record)
        except (ValueError, KeyError, TypeError) as e:
            raise ValidationError("project", f"{name!r} has an unreadable manifest ({e})") from e

    def _save_project(self, project: Project) -> None:
        atomic_write_json(self._project_folder(project.name) / MANIFEST, project.record())

    def _not_rendering(self, name: str) -> None:
        job = self._project_jobs.get(name)
        if job is not None and job.state == "rendering":
            raise Conflict("name", f"project {name!r} is rendering; pause or cancel it first")

    def _voice_file(self, name: str, voice: str, field_name: str = "voice") -> Path:
        if voice.startswith(OWN_VOICE):
            path = self._project_folder(name) / "voices" / sanitize_name(voice[1:].rsplit(".", 1)[0], "voice")
            path = path.with_suffix(".wav")
            if not path.is_file():
                raise ValidationError(field_name, f"the project's own voice {voice!r} is missing")
            return path
        try:
            return self.voice_path(voice)
        except ValidationError as e:
            raise ValidationError(field_name, str(e).split(": ", 1)[-1]) from e

    # -- create, list, get, edit, delete ------------------------------------------------------

    def create_project(self, name: str, filename: str, data: bytes, *, voice: str = "", voice_file: AudioInput | None = None,
                       emotion: EmotionSpec = EmotionSpec(), generation: GenerationParams = GenerationParams(),
                       seed: int = 0, replace_existing: bool = False) -> Project:
        """Import a book (text, Markdown or EPUB, by `filename`'s suffix) as project `name`, its
        voice a library voice or `voice_file` (kept in the project). With `replace_existing`, a
        project of that name gets the new text and settings and keeps its rendered segments (a
        later render redoes only what changed). Nothing is written when any input is bad."""
        check_project_name(name)
        title, chapters = read_book(filename, data)
        seed = int(check_number(seed, "seed", 0, 2**32 - 1, whole=True))
        rethrow_named(emotion.validate, "emotion")
        rethrow_named(replace(generation, seed=None).validate, "generation")
        folder = self._project_folder(name)
        if (folder / MANIFEST).exists() and not replace_existing:
            raise Conflict("name", f"a project named {name!r} exists")
        self._not_rendering(name)
        if voice_file is not None:   # kept in the project, as 16-bit WAV (the same input, the same bytes)
            samples, rate = decode_audio(voice_file, "voice", self.limits)
            buffer = io.BytesIO()
            sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
            voice = f"{OWN_VOICE}reference.wav"
        elif not isinstance(voice, str) or not voice:
            raise ValidationError("voice", "choose a voice for the project")
        else:
            self.voice_path(voice)
        if voice_file is not None:
            atomic_write_bytes(folder / "voices" / "reference.wav", buffer.getvalue())
        project = Project(name, title, Path(str(filename)).name[:200], voice, emotion, replace(generation, seed=None), seed,
                          [Chapter(c.title, c.text) for c in chapters])
        self._save_project(project)
        return project

    def list_projects(self) -> list[str]:
        root = self.data.root / PROJECTS_FOLDER
        return sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []

    def get_project(self, name: str) -> Project:
        return self._load_project(name)

    def update_project(self, name: str, *, title=UNCHANGED, voice=UNCHANGED, emotion=UNCHANGED, generation=UNCHANGED,
                       seed=UNCHANGED) -> Project:
        """Change the project's defaults; segments they change render again at the next render."""
        project = self._load_project(name)
        self._not_rendering(name)
        if title is not UNCHANGED:
            project = replace(project, title=check_name(title, "title"))
        if voice is not UNCHANGED:
            self._voice_file(name, check_name(voice, "voice"))
            project = replace(project, voice=voice)
        if emotion is not UNCHANGED:
            rethrow_named(emotion.validate, "emotion")
            project = replace(project, emotion=emotion)
        if generation is not UNCHANGED:
            rethrow_named(replace(generation, seed=None).validate, "generation")
            project = replace(project, generation=replace(generation, seed=None))
        if seed is not UNCHANGED:
            project = replace(project, seed=int(check_number(seed, "seed", 0, 2**32 - 1, whole=True)))
        self._save_project(project)
        return project

    def update_chapter(self, name: str, index: int, *, title=UNCHANGED, text=UNCHANGED, voice=UNCHANGED,
                       emotion=UNCHANGED, generation=UNCHANGED) -> Project:
        """Edit chapter `index` (from 0): its title, its text, or its overrides (None: the
        project's voice / emotion; generation: a dict of GenerationParams fields to differ)."""
        project = self._load_project(name)
        self._not_rendering(name)
        index = int(check_number(index, "chapter", 0, len(project.chapters) - 1, whole=True))
        chapter = project.chapters[index]
        if title is not UNCHANGED:
            chapter = replace(chapter, title=check_name(title, "title"))
        if text is not UNCHANGED:
            check_chapter_text(text if isinstance(text, str) else "", "text")
            if not isinstance(text, str) or not text.strip():
                raise ValidationError("text", "is empty; a chapter needs words to speak")
            chapter = replace(chapter, text=text.strip())
        if voice is not UNCHANGED:
            if voice is not None:
                self._voice_file(name, check_name(voice, "voice"))
            chapter = replace(chapter, voice=voice)
        if emotion is not UNCHANGED:
            if emotion is not None:
                rethrow_named(emotion.validate, "emotion")
            chapter = replace(chapter, emotion=emotion)
        if generation is not UNCHANGED:
            overrides = dict(generation or {})
            try:
                replace(project.generation, **overrides, seed=None).validate()
            except (TypeError, ValueError) as e:
                raise ValidationError("generation", str(e)) from e
            chapter = replace(chapter, generation=overrides)
        chapters = list(project.chapters)
        chapters[index] = chapter
        project = replace(project, chapters=chapters)
        self._save_project(project)
        return project

    def delete_project(self, name: str) -> None:
        self._load_project(name)
        self._not_rendering(name)
        shutil.rmtree(self._project_folder(name))
        self._project_jobs.pop(name, None)

    # -- segments and progress ----------------------------------------------------------------

    def project_clips(self, name: str) -> list[list[Clip]]:
        """Every chapter's segments as clips (the engine must be ready: NotReady otherwise)."""
        project = self._load_project(name)
        out = []
        for i, chapter in enumerate(project.chapters):
            voice = self._voice_file(name, chapter.voice or project.voice, f"chapters[{i}].voice")
            generation = replace(project.generation, **chapter.generation)
            template = make_clip(self, "", voice, seed=0, emotion=chapter.emotion or project.emotion, generation=generation)
            out.append([replace(template, text=text, generation={**template.generation, "seed": segment_seed(project.seed, text)})
                        for text in split_segments(chapter.text)])
        return out

    def project_progress(self, name: str) -> ProjectProgress:
        """Segments done per chapter; the state of the render running or last run in this process."""
        job = self._project_jobs.get(name)
        if job is not None and job.state == "rendering":
            return job.snapshot()
        project, clips = self._load_project(name), self.project_clips(name)
        store = ClipStore(self._project_folder(name) / "clips")
        chapters = [ChapterProgress(c.title, sum(k.key in store for k in cs), len(cs)) for c, cs in zip(project.chapters, clips)]
        last = job.snapshot() if job is not None else ProjectProgress("idle", [])
        return ProjectProgress(last.state, chapters, last.message, last.error)

    # -- rendering ----------------------------------------------------------------------------

    def _begin(self, name: str, cancel: threading.Event | None = None) -> tuple[_Job, list[Clip]]:
        project, clips = self._load_project(name), self.project_clips(name)
        store = ClipStore(self._project_folder(name) / "clips")
        chapters = [(c.title, {k.key for k in cs}) for c, cs in zip(project.chapters, clips)]
        with Projects._jobs_lock:
            self._not_rendering(name)
            job = self._project_jobs[name] = _Job(chapters, {k.key for cs in clips for k in cs if k.key in store}, cancel)
        return job, [k for cs in clips for k in cs]

    def render_project(self, name: str, *, runner: Runner | None = None, progress: ProgressFn = no_progress,
                       on_segment: Callable[[ProjectProgress], None] = lambda p: None,
                       cancel: threading.Event | None = None) -> RenderReport:
        """Render the segments the project's store lacks, as one admitted job without a time
        limit. progress(fraction, stage) reports the whole; on_segment(progress) follows each
        finished segment. Pause, cancel (or `cancel`) raise Cancelled; what finished is kept."""
        job, clips = self._begin(name, cancel)
        return self._render(name, job, clips, runner, progress, on_segment)

    def start_project_render(self, name: str, runner: Runner | None = None) -> ProjectProgress:
        """render_project in a background thread; follow it with project_progress()."""
        job, clips = self._begin(name)

        def run():
            try:
                self._render(name, job, clips, runner, no_progress, lambda p: None)
            except Exception:   # recorded in the job; the reader sees state "failed" and the error
                pass
        threading.Thread(target=run, name=f"project-{name}", daemon=True).start()
        return job.snapshot()

    def pause_project(self, name: str) -> None:
        self._stop(name, "paused")

    def cancel_project(self, name: str) -> None:
        self._stop(name, "cancelled")

    def _stop(self, name: str, state: str) -> None:
        job = self._project_jobs.get(check_project_name(name))
        if job is None or job.state != "rendering":
            raise Conflict("name", f"project {name!r} is not rendering")
        job.stop_as = state
        job.cancel.set()

    def _render(self, name: str, job: _Job, clips: list[Clip], runner: Runner | None, progress: ProgressFn,
                on_segment: Callable[[ProjectProgress], None]) -> RenderReport:
        store = ClipStore(self._project_folder(name) / "clips")
        total, kept = len({c.key for c in clips}), len(job.done)

        def report(fraction: float, stage: str) -> None:
            with job.lock:
                job.message = stage
            progress(fraction, stage)

        def segment_progress(fraction: float, stage: str) -> None:  # the runner's fraction is of the missing ones
            report((kept + fraction * (total - kept)) / max(total, 1), stage)

        def done(clip: Clip, audio: np.ndarray) -> None:
            with job.lock:
                job.done.add(clip.key)
            where = next((i, t) for i, (t, keys) in enumerate(job.chapters) if clip.key in keys)
            report(len(job.done) / max(total, 1),
                   f"chapter {where[0] + 1}/{len(job.chapters)} “{where[1]}”: {len(job.done)}/{total} segments rendered")
            on_segment(job.snapshot())

        try:
            with self.job(job.cancel, timeout_s=math.inf) as check:
                remove_temp_leftovers(store.folder.parent)   # a killed process's half-written clip or manifest
                report(kept / max(total, 1), f"{kept} of {total} segments already rendered")
                rendered = render_missing(clips, store, runner or LocalRunner(self, segment_progress), check, done)
                store.keep_only(c.key for c in clips)  # segments an edit replaced
        except Cancelled as e:
            with job.lock:
                job.state, job.message = job.stop_as, f"{job.stop_as}: {len(job.done)}/{total} segments kept"
            raise Cancelled(f"the render was {job.stop_as}") from e
        except BaseException as e:
            with job.lock:
                job.state, job.error = "failed", f"{type(e).__name__}: {e}"
            raise
        with job.lock:
            job.state, job.message = "done", f"{total} segments rendered"
        return RenderReport(rendered, kept, total)

    # -- export -------------------------------------------------------------------------------

    def export_project(self, name: str, out_dir: str | Path | None = None, output_format: str = "mp3") -> ExportResult:
        """Write the chapter files (`NN Title.<fmt>`), the audiobook (`<title>.mp3` with ID3
        chapter frames) and `<title>.srt` (a cue per chapter) into `out_dir` (default the
        project's export/, emptied first). Conflict when segments are not rendered yet."""
        project, clips = self._load_project(name), self.project_clips(name)
        fmt = check_file_format(output_format)
        store = ClipStore(self._project_folder(name) / "clips")
        missing = sum(c.key not in store for cs in clips for c in cs)
        if missing:
            raise Conflict("name", f"{missing} segment(s) of project {name!r} are not rendered yet; render it first")
        folder = Path(out_dir) if out_dir is not None else self._project_folder(name) / "export"
        if out_dir is None and folder.is_dir():
            shutil.rmtree(folder)
        chapters = [(c.title, [store.get(k.key) for k in cs]) for c, cs in zip(project.chapters, clips)]
        return ExportResult(*write_book(folder, project.title, chapters, fmt))
