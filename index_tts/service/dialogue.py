"""Dialogue scripts: `Role: line` text voiced line by line, each role in its own voice and emotion.

    Alice: Did you hear that?
    Bob: [afraid] Hear what? [pause 300ms] Oh.
    # a comment line, skipped

A line is `Role: text` (":" or the full-width "："); blank lines and lines starting with "#" are
skipped. Inline tags work inside a line. The composer is one admitted job of the service (it
counts in the queue; cancelling it or the request timeout stops it with nothing written): it
renders each line (one engine call per tagged part), joins the lines with an adjustable pause,
and writes one mixed file, its subtitles (cues prefixed with the role), a zip of the lines
(`01_Alice.wav`, ...) and a history record.

Every line is a clip (clips.py) with a concrete seed, kept in the dialogue's own clip store
(data/dialogues/<dialogue id>/) and named in the history record with its seed and emotion. So
regenerate_line() redoes one line with a new seed or emotion, renders that line alone, and mixes
the others from their kept clips, sample for sample; the result is a new history entry of the
same dialogue.
"""

from __future__ import annotations

import io
import re
import secrets
import shutil
import threading
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index_tts.emotion import EmotionSpec
from index_tts.encoding import encode
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.service.checks import check_file_format, check_text
from index_tts.service.clips import Clip, ClipStore, make_clip, render_missing
from index_tts.service.errors import ValidationError, rethrow_named
from index_tts.service.render import OUTPUT_SAMPLE_RATE, checking, describe_emotion, title_of
from index_tts.service.requests import Rendered, TimedSegment
from index_tts.storage import atomic_write_bytes, sanitize_name

if TYPE_CHECKING:
    from index_tts.service.synthesizer import Synthesizer

MAX_SCRIPT_CHARS = 100_000
MAX_LINES = 200
MAX_ROLES = 12
MAX_PAUSE_MS = 5000
DIALOGUES_FOLDER = "dialogues"   # under the data folder: one clip store per dialogue
_DIALOGUE_ID = re.compile(r"^[0-9a-f]{16}$")
_LINE = re.compile(r"^\s*([^:：#][^:：]{0,39}?)\s*[:：]\s*(.*)$")


@dataclass(frozen=True)
class Line:
    number: int     # line number in the script, from 1
    role: str
    text: str


@dataclass(frozen=True)
class RoleSetting:
    voice: str                                  # a voice library name
    emotion: EmotionSpec = EmotionSpec()


@dataclass(frozen=True)
class DialogueResult:
    path: Path
    zip_path: Path
    srt_path: Path
    duration_s: float
    lines: list[tuple[str, str, str, float, float]]   # role, voice, text, start_s, end_s
    history_id: str
    format: str
    timeline: list[TimedSegment] = field(default_factory=list)   # every segment, "Role: text", with its emotion
    seeds: list[int] = field(default_factory=list)               # each line's seed, in line order
    rendered_lines: int = 0                                      # lines the engine voiced (the rest were kept)


def parse_script(script: str) -> list[Line]:
    """The spoken lines of a script; ValidationError("script") naming the first bad line."""
    check_text(script, "script", MAX_SCRIPT_CHARS)
    if not script.strip():
        raise ValidationError("script", "is empty; write one `Role: line` per line")
    lines = []
    for number, raw in enumerate(script.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _LINE.match(raw)
        if not match or not match.group(2).strip():
            raise ValidationError("script", f"line {number} ({raw.strip()[:40]!r}) is not `Role: text`")
        lines.append(Line(number, match.group(1).strip(), match.group(2).strip()))
    if len(lines) > MAX_LINES:
        raise ValidationError("script", f"has {len(lines)} lines; at most {MAX_LINES}")
    return lines


def roles_of(lines: list[Line]) -> list[str]:
    """Roles in order of first appearance."""
    return list(dict.fromkeys(line.role for line in lines))


def compose(synth: Synthesizer, script: str, roles: dict[str, RoleSetting], *, pause_ms: int = 400,
            output_format: str = "wav", generation: GenerationParams = GenerationParams(),
            progress: ProgressFn = no_progress, cancel: threading.Event | None = None) -> DialogueResult:
    """Voice every line of `script` and write the mixed file, the per-line zip and the subtitles,
    as one job of `synth` (Busy when its queue is full; Cancelled / TimedOut write nothing).
    Each line gets a concrete seed (generation.seed, or a fresh one per line) and is kept as a
    clip of a new dialogue, so regenerate_line() can redo one line later."""
    lines = parse_script(script)
    names = roles_of(lines)
    if len(names) > MAX_ROLES:
        raise ValidationError("roles", f"the script has {len(names)} roles; at most {MAX_ROLES}")
    missing = [r for r in names if r not in roles or not getattr(roles[r], "voice", "")]
    if missing:
        raise ValidationError("roles", f"choose a voice for {', '.join(missing)}")
    if isinstance(pause_ms, bool) or not isinstance(pause_ms, (int, float)) or not 0 <= pause_ms <= MAX_PAUSE_MS:
        raise ValidationError("pause_ms", f"must be a number of milliseconds in [0, {MAX_PAUSE_MS}], got {pause_ms!r}")
    fmt = check_file_format(output_format)
    if not isinstance(generation, GenerationParams):
        raise ValidationError("generation", f"must be GenerationParams, got {type(generation).__name__}")
    rethrow_named(generation.validate, "generation")
    voice_paths = {roles[role].voice: synth.voice_path(roles[role].voice) for role in names}
    takes = [_Take(line, roles[line.role].voice, roles[line.role].emotion,
                   generation.seed if generation.seed is not None else secrets.randbelow(2**32)) for line in lines]
    request = {"script": script, "pause_ms": pause_ms, "output_format": fmt.name,
               "roles": {r: {"voice": roles[r].voice, "emotion": roles[r].emotion.to_record()} for r in names},
               "generation": asdict(generation)}
    with synth.job(cancel) as check:
        result = _voice(synth, takes, voice_paths, pause_ms, fmt, generation, checking(progress, check), check, request,
                        secrets.token_hex(8), {})
    progress(1.0, "done")
    return result


def regenerate_line(synth: Synthesizer, entry_id: str, line: int, *, seed: int | None = None,
                    emotion: EmotionSpec | None = None, progress: ProgressFn = no_progress,
                    cancel: threading.Event | None = None) -> DialogueResult:
    """Voice line `line` (from 1, in the entry's line order) of a dialogue history entry again
    with `seed` (None: a fresh one) and `emotion` (None: the line's own), keep every other line's
    clip as it is, and write the mix as a new history entry (the old one stays). One admitted job.
    ValidationError("history") for an entry that is no dialogue or predates per-line clips,
    ("line") for a line it lacks, ("seed"), ("emotion"); NotFound for a missing entry."""
    saved = synth.get_history(entry_id)
    try:
        if saved.get("kind") != "dialogue":
            raise ValueError("only a dialogue's lines can be regenerated one by one")
        request, placed = saved["request"], saved["lines"]
        if not saved.get("dialogue_id") or not all("clip" in p and "seed" in p for p in placed):
            raise ValueError("it was made before lines were kept one by one; regenerate the whole dialogue first")
        fmt = check_file_format(request["output_format"])
        generation = GenerationParams(**request.get("generation", {}))
        takes = [_Take(Line(int(p.get("number", i + 1)), p["role"], p["text"]), p["voice"],
                       EmotionSpec.from_record(p["emotion"]), int(p["seed"])) for i, p in enumerate(placed)]
        known = {p["clip"]: [TimedSegment(s["text"], s["start"], s["end"], s["emotion"]) for s in p.get("segments", [])]
                 for p in placed}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValidationError("history", f"entry {entry_id!r} cannot have one line regenerated: {e}") from e
    if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= len(takes):
        raise ValidationError("line", f"must be a line number from 1 to {len(takes)}, got {line!r}")
    if seed is None:
        seed = secrets.randbelow(2**32)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValidationError("seed", f"must be a whole number in [0, 2^32), got {seed!r}")
    if emotion is not None:
        if not isinstance(emotion, EmotionSpec) or emotion.mode == "audio":
            raise ValidationError("emotion", "must be a preset, slider or text emotion (no reference audio)")
        rethrow_named(emotion.validate, "emotion")
    old = takes[line - 1]
    takes[line - 1] = replace(old, seed=seed, emotion=old.emotion if emotion is None else emotion)
    voice_paths = {take.voice: synth.voice_path(take.voice) for take in takes}
    with synth.job(cancel) as check:
        result = _voice(synth, takes, voice_paths, request["pause_ms"], fmt, generation, checking(progress, check), check,
                        request, saved["dialogue_id"], known)
    progress(1.0, "done")
    return result


@dataclass(frozen=True)
class _Take:
    """One line as it is voiced: the voice (a library name), emotion and seed it gets."""
    line: Line
    voice: str
    emotion: EmotionSpec
    seed: int


class _LineRunner:
    """LocalRunner's way (one clip after another through the service's engine) that also keeps
    each line's timeline, for the subtitles and the waveform."""

    def __init__(self, synth: Synthesizer, numbers: dict[str, Line], progress: ProgressFn):
        self.synth, self.numbers, self.progress = synth, numbers, progress
        self.timelines: dict[str, list[TimedSegment]] = {}

    def run(self, clips: list[Clip], on_done, check) -> None:
        for i, clip in enumerate(clips):
            check()
            line = self.numbers[clip.key]
            share = (i / len(clips), 1 / len(clips))
            try:
                rendered, _ = self.synth.render(clip.request(), lambda f, stage, s=share: self.progress(
                    s[0] + 0.9 * s[1] * f, f"line {i + 1}/{len(clips)}: {stage}"), check=check)
            except ValidationError as e:
                raise ValidationError("script" if e.field == "text" else e.field,
                                      f"line {line.number} ({line.role}): {str(e).split(': ', 1)[-1]}") from e
            self.timelines[clip.key] = rendered.timeline
            on_done(clip, rendered.audio)


def _voice(synth: Synthesizer, takes: list[_Take], voice_paths: dict[str, Path], pause_ms: int, fmt,
           generation: GenerationParams, progress: ProgressFn, check, request: dict, dialogue_id: str,
           known: dict[str, list[TimedSegment]]) -> DialogueResult:
    """The admitted part: render the lines the dialogue's clip store lacks, then mix and write
    everything. `known`: the timelines (relative to their line) of clips rendered before."""
    clips = [make_clip(synth, take.line.text, voice_paths[take.voice], seed=take.seed, emotion=take.emotion,
                       generation=generation) for take in takes]
    store = ClipStore(clip_folder(synth, dialogue_id))
    runner = _LineRunner(synth, {clip.key: take.line for clip, take in zip(clips, takes)}, progress)
    rendered_lines = render_missing(clips, store, runner, check)
    timelines = {**known, **runner.timelines}

    gap = np.zeros(int(OUTPUT_SAMPLE_RATE * pause_ms / 1000), np.int16)
    pieces, timeline, placed, files, records = [], [], [], [], []
    length = 0
    for i, (take, clip) in enumerate(zip(takes, clips)):
        line = take.line
        audio = store.get(clip.key)
        if i:
            pieces.append(gap)
            length += gap.size
        start = length / OUTPUT_SAMPLE_RATE
        pieces.append(audio)
        length += audio.size
        end = length / OUTPUT_SAMPLE_RATE
        segments = timelines.get(clip.key) or [TimedSegment(line.text, 0.0, end - start, describe_emotion(take.emotion))]
        files.append((f"{i + 1:02d}_{_file_part(line.role)}{fmt.suffix}", audio))
        timeline += [replace(s, text=f"{line.role}: {s.text}", start_s=start + s.start_s, end_s=start + s.end_s)
                     for s in segments]
        placed.append((line.role, take.voice, line.text, start, end))
        records.append({"role": line.role, "voice": take.voice, "text": line.text, "start": round(start, 3),
                        "end": round(end, 3), "number": line.number, "seed": take.seed,
                        "emotion": take.emotion.to_record(), "clip": clip.key, "segments": [s.as_dict() for s in segments]})

    check()  # the last chance to stop before a file appears
    progress(0.95, "saving audio")
    mixed = Rendered(np.concatenate(pieces), timeline, engine=synth._ready_engine().name)
    record = {"kind": "dialogue", "title": title_of(" / ".join(f"{t.line.role}: {t.line.text}" for t in takes[:2])),
              "request": request, "dialogue_id": dialogue_id, "lines": records}
    path, srt, entry_id = synth.write_output(mixed, fmt.name, record)
    zip_path = synth.history.side_file(entry_id, ".lines.zip")
    atomic_write_bytes(zip_path, _zip(files, fmt))
    return DialogueResult(path, zip_path, srt, length / OUTPUT_SAMPLE_RATE, placed, entry_id, fmt.name, timeline,
                          seeds=[take.seed for take in takes], rendered_lines=rendered_lines)


def clip_folder(synth: Synthesizer, dialogue_id: str) -> Path:
    """Where a dialogue's line clips are kept: every version of it (each regenerated line a new
    history entry) shares the folder, so only changed lines are ever rendered again."""
    if not _DIALOGUE_ID.match(dialogue_id):
        raise ValueError(f"bad dialogue id {dialogue_id!r}")
    return synth.data.root / DIALOGUES_FOLDER / dialogue_id


def remove_unused_clip_folders(synth: Synthesizer) -> int:
    """Delete the clip folders of dialogues no history entry names any more (removed by hand or by
    the retention, or a crash before the first record). Call at start, before any job runs."""
    root = synth.data.root / DIALOGUES_FOLDER
    if not root.is_dir():
        return 0
    named = {r.get("dialogue_id") for r in synth.history.list(limit=10**9) if r.get("kind") == "dialogue"}
    gone = 0
    for folder in root.iterdir():
        if folder.is_dir() and _DIALOGUE_ID.match(folder.name) and folder.name not in named:
            shutil.rmtree(folder, ignore_errors=True)
            gone += 1
    return gone



def compose_from_history(synth: Synthesizer, entry_id: str, progress: ProgressFn = no_progress,
                         cancel: threading.Event | None = None) -> DialogueResult:
    """Voice a dialogue history entry again with its script, roles, pause and format. The roles'
    voices come from the library by name: ValidationError("voice") if one is gone."""
    try:
        saved = synth.history.get(entry_id)["request"]
        roles = {}
        for role, setting in saved["roles"].items():
            roles[role] = RoleSetting(setting["voice"], EmotionSpec.from_record(setting["emotion"]))
        script, pause_ms, fmt = saved["script"], saved["pause_ms"], saved["output_format"]
        generation = GenerationParams(**saved.get("generation", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValidationError("history", f"entry {entry_id!r} cannot be regenerated as a dialogue ({e})") from e
    return compose(synth, script, roles, pause_ms=pause_ms, output_format=fmt, generation=generation, progress=progress,
                   cancel=cancel)


def _file_part(role: str) -> str:
    try:
        return sanitize_name(role, "role").replace(" ", "_")
    except ValueError:
        return "role"


def _zip(clips: list[tuple[str, np.ndarray]], fmt) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, audio in clips:
            archive.writestr(name, encode(audio, OUTPUT_SAMPLE_RATE, fmt))
    return buffer.getvalue()
