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
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index_tts.emotion import EmotionSpec
from index_tts.encoding import audio_format, encode
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.service.checks import check_text
from index_tts.service.errors import ValidationError
from index_tts.service.render import OUTPUT_SAMPLE_RATE, checking, title_of
from index_tts.service.requests import Rendered, SynthesisRequest, TimedSegment
from index_tts.storage import atomic_write_bytes, sanitize_name

if TYPE_CHECKING:
    from index_tts.service.synthesizer import Synthesizer

MAX_SCRIPT_CHARS = 100_000
MAX_LINES = 200
MAX_ROLES = 12
MAX_PAUSE_MS = 5000
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
    as one job of `synth` (Busy when its queue is full; Cancelled / TimedOut write nothing)."""
    lines = parse_script(script)
    names = roles_of(lines)
    if len(names) > MAX_ROLES:
        raise ValidationError("roles", f"the script has {len(names)} roles; at most {MAX_ROLES}")
    missing = [r for r in names if r not in roles or not getattr(roles[r], "voice", "")]
    if missing:
        raise ValidationError("roles", f"choose a voice for {', '.join(missing)}")
    if isinstance(pause_ms, bool) or not isinstance(pause_ms, (int, float)) or not 0 <= pause_ms <= MAX_PAUSE_MS:
        raise ValidationError("pause_ms", f"must be a number of milliseconds in [0, {MAX_PAUSE_MS}], got {pause_ms!r}")
    try:
        fmt = audio_format(output_format)
    except ValueError as e:
        raise ValidationError("output_format", str(e)) from e
    if fmt.container is None:
        raise ValidationError("output_format", "raw pcm has no place in a zip of lines; choose wav, flac, mp3, ogg or opus")
    voice_paths = {role: synth.voice_path(roles[role].voice) for role in names}
    with synth.job(cancel) as check:
        result = _voice(synth, lines, roles, voice_paths, pause_ms, fmt, generation, checking(progress, check), check,
                      {"script": script, "pause_ms": pause_ms, "output_format": fmt.name,
                       "roles": {r: {"voice": roles[r].voice, "emotion": roles[r].emotion.to_record()} for r in names}})
    progress(1.0, "done")
    return result


def _voice(synth: Synthesizer, lines: list[Line], roles: dict[str, RoleSetting], voice_paths: dict[str, Path],
           pause_ms: int, fmt, generation: GenerationParams, progress: ProgressFn, check, request: dict) -> DialogueResult:
    """The admitted part of compose(): render the lines, then write everything."""
    gap = np.zeros(int(OUTPUT_SAMPLE_RATE * pause_ms / 1000), np.int16)
    pieces, timeline, placed, clips = [], [], [], []
    length = 0
    for i, line in enumerate(lines):
        setting = roles[line.role]
        line_request = SynthesisRequest(text=line.text, voice=voice_paths[line.role], emotion=setting.emotion,
                                        generation=generation, output_format=fmt.name)
        share = (i / len(lines), 1 / len(lines))
        try:
            rendered, _ = synth.render(line_request, lambda f, stage, s=share: progress(s[0] + 0.9 * s[1] * f,
                                                                                  f"line {i + 1}/{len(lines)}: {stage}"),
                                       check=check)
        except ValidationError as e:
            raise ValidationError("script" if e.field == "text" else e.field,
                                  f"line {line.number} ({line.role}): {str(e).split(': ', 1)[-1]}") from e
        if i:
            pieces.append(gap)
            length += gap.size
        start = length / OUTPUT_SAMPLE_RATE
        pieces.append(rendered.audio)
        length += rendered.audio.size
        clips.append((f"{i + 1:02d}_{_file_part(line.role)}{fmt.suffix}", rendered.audio))
        timeline += [replace(s, text=f"{line.role}: {s.text}", start_s=start + s.start_s, end_s=start + s.end_s)
                     for s in rendered.timeline]
        placed.append((line.role, setting.voice, line.text, start, length / OUTPUT_SAMPLE_RATE))

    check()  # the last chance to stop before a file appears
    progress(0.95, "saving audio")
    mixed = Rendered(np.concatenate(pieces), timeline, engine=rendered.engine)
    record = {"kind": "dialogue", "title": title_of(" / ".join(f"{l.role}: {l.text}" for l in lines[:2])),
              "request": request,
              "lines": [{"role": r, "voice": v, "text": t, "start": round(s, 3), "end": round(e, 3)} for r, v, t, s, e in placed]}
    path, srt, entry_id = synth.write_output(mixed, fmt.name, record)
    zip_path = synth.history.side_file(entry_id, ".lines.zip")
    atomic_write_bytes(zip_path, _zip(clips, fmt))
    return DialogueResult(path, zip_path, srt, length / OUTPUT_SAMPLE_RATE, placed, entry_id, fmt.name, timeline)


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
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValidationError("history", f"entry {entry_id!r} cannot be regenerated as a dialogue ({e})") from e
    return compose(synth, script, roles, pause_ms=pause_ms, output_format=fmt, progress=progress, cancel=cancel)


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
