"""Subtitle-timed dubbing: an SRT or WebVTT file voiced cue by cue onto one track, each cue
starting at its start time to the sample.

A cue is a clip (clips.py): its text, voice, emotion, seed and, in `fit` mode, its slot as the
clip's max_duration. A dubbing job keeps its clips in its folder, so regenerating one cue (a
new seed or emotion) renders that cue alone and the rest come from the store.

Fit modes (each cue's slot is its end time minus its start time):
    natural  speak at the natural pace; a cue shorter than its slot is followed by silence, a
             longer one runs on (mixed over what follows) and is reported as an overrun;
    fit      duration control: the natural pace when it fits, else the engine renders the same
             content faster (down to the duration factor range's end) so the cue ends by its end
             time; what the range cannot reach is time-stretched (WSOLA) into the slot, so no
             cue overlaps the next;
    stretch  speak naturally, then time-stretch (WSOLA) every cue to its slot exactly.

Roles: with `voice`, every cue is spoken by that saved voice, its text as written. With
`roles` ({role: RoleSetting}), a cue's role is its WebVTT `<v Name>` tag or a `Role:` prefix
naming one of the map's roles (the prefix is not spoken); the role "" (or "*") voices cues with
neither.

A job folder (data dir `dubbing/<id>/`), every file written atomically:
    job.json                 the settings and every cue (role, text, seed, emotion override)
    source.srt|.vtt          the subtitles as given (as UTF-8)
    clips/<key>.wav|.json    rendered cues (clips.ClipStore) and the factor each was rendered at
    track.<fmt>  cues/NNN.<fmt>  report.json  retimed.srt (when a cue's end moved)
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from index_tts import subtitles
from index_tts.emotion import EmotionSpec
from index_tts.encoding import audio_format, encode
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from index_tts.service.checks import check_file_format
from index_tts.service.clips import Clip, ClipStore, make_clip, render_clip_info
from index_tts.service.dialogue import RoleSetting
from index_tts.service.errors import NotFound, ValidationError, rethrow_named
from index_tts.service.render import OUTPUT_SAMPLE_RATE, checking, parse_tags
from index_tts.timestretch import MAX_SPEED, MIN_SPEED, time_stretch

if TYPE_CHECKING:
    from index_tts.service.synthesizer import Synthesizer

FIT_MODES = ("natural", "fit", "stretch")
MAX_CUES = 2000
MAX_SUBTITLE_BYTES = 2 * 1024 * 1024
FADE_S = 0.005                     # the fade on a cue's last samples when it is cut at its slot's end
_ROLE_PREFIX = re.compile(r"^\s*([^:：\[\]]{1,40}?)\s*[:：]\s*(.+)$")
_JOB_ID = re.compile(r"^[0-9a-z_]{8,40}$")


@dataclass(frozen=True)
class DubCue:
    number: int
    start_s: float
    end_s: float
    role: str          # "" with a single voice
    text: str          # what is spoken (inline tags allowed)
    seed: int
    emotion: dict | None = None   # EmotionSpec record overriding the role's; None: the role's


@dataclass(frozen=True)
class DubbingResult:
    job_id: str
    folder: Path
    track_path: Path
    cue_paths: list[Path]
    report: list[dict]         # per cue: index, start, end, target, actual, factor, stretch, overrun, ...
    source_path: Path
    retimed_path: Path | None
    format: str
    rendered: int              # cues rendered by this call (the rest came from the store)


def subtitle_roles(data: bytes | str) -> list[str]:
    """The roles a subtitle file seems to use (WebVTT voices, `Role:` prefixes), in order; for
    a front end to offer a voice per role. ValidationError("subtitles") for a bad file."""
    roles = []
    for cue in _read(data):
        match = _ROLE_PREFIX.match(cue.text)
        roles.append(cue.role or (match.group(1).strip() if match else ""))
    return [r for r in dict.fromkeys(roles) if r]


def _read(data: bytes | str) -> list[subtitles.Cue]:
    if isinstance(data, (bytes, bytearray)) and len(data) > MAX_SUBTITLE_BYTES:
        raise ValidationError("subtitles", f"the file is too large ({len(data)} bytes; at most {MAX_SUBTITLE_BYTES})")
    if not isinstance(data, (bytes, bytearray, str)):
        raise ValidationError("subtitles", f"must be a subtitle file, got {type(data).__name__}")
    try:
        return subtitles.read_cues(bytes(data) if isinstance(data, bytearray) else data, MAX_CUES)
    except subtitles.SubtitleError as e:
        raise ValidationError("subtitles", str(e)) from e


def _cue_rows(cues: list[subtitles.Cue], roles: dict[str, RoleSetting] | None, base_seed: int) -> list[DubCue]:
    rows = []
    for cue in cues:
        role, text = cue.role, cue.text
        match = _ROLE_PREFIX.match(text)
        if roles is not None and match and match.group(1).strip() in roles:
            role, text = match.group(1).strip(), match.group(2).strip()
        if roles is not None:
            role = role if role in roles else next((d for d in ("", "*") if d in roles), None)
            if role is None:
                raise ValidationError("roles", f"cue {cue.number}: no voice for its role {cue.role or (match.group(1) if match else '')!r}; "
                                               "map it in roles, or add a default role \"*\"")
        try:
            parse_tags(text)
        except ValidationError as e:
            raise ValidationError("subtitles", f"cue {cue.number}: {str(e).split(': ', 1)[-1]}") from e
        rows.append(DubCue(cue.number, cue.start_s, cue.end_s, role or "", text, (base_seed + cue.number) % 2**32))
    return rows


class Dubbing:
    """Part of the Synthesizer (a mixin): dubbing jobs. Uses job(), render(), voice_path(), data."""

    def _dubbing_root(self) -> Path:
        return self.data.root / "dubbing"

    def create_dubbing(self, subtitles_file: bytes | str, *, voice: str | None = None,
                       roles: dict[str, RoleSetting] | None = None, fit: str = "natural", output_format: str = "wav",
                       generation: GenerationParams = GenerationParams(), progress: ProgressFn = no_progress,
                       cancel: threading.Event | None = None,
                       on_cue: Callable[[dict, np.ndarray], None] | None = None) -> DubbingResult:
        """Voice a subtitle file (bytes as uploaded, or pasted text) as a new dubbing job.

        Everything is checked before anything is written: ValidationError("subtitles") naming the
        cue number for a bad file, ("voice"/"roles"/"fit"/"output_format") for the rest. Then one
        admitted job (Busy, Cancelled, TimedOut as synthesize; a cancelled job keeps the cues it
        rendered, and regenerating any cue resumes it). on_cue(report row, cue audio) is called
        as each cue is ready, in order."""
        cues = _read(subtitles_file)
        if fit not in FIT_MODES:
            raise ValidationError("fit", f"must be one of {', '.join(FIT_MODES)}, got {fit!r}")
        fmt = check_file_format(output_format)
        settings = _role_settings(self, voice, roles)
        base_seed = generation.seed if generation.seed is not None else random.randrange(2**32)
        rows = _cue_rows(cues, None if voice is not None else settings, base_seed)
        if not isinstance(generation, GenerationParams):
            raise ValidationError("generation", f"must be GenerationParams, got {type(generation).__name__}")
        rethrow_named(generation.validate, "generation")
        self._ready_engine()
        text = subtitles.decode_subtitles(subtitles_file)
        job_id = time.strftime("%Y%m%d_%H%M%S", time.gmtime()) + f"_{random.randrange(16**6):06x}"
        folder = self._dubbing_root() / job_id
        job = {"id": job_id, "fit": fit, "output_format": fmt.name, "source": "source.vtt" if text.lstrip().startswith("WEBVTT") else "source.srt",
               "roles": {r: {"voice": s.voice, "emotion": s.emotion.to_record()} for r, s in settings.items()},
               "generation": asdict(replace(generation, seed=None)), "cues": [asdict(r) for r in rows]}
        with self.job(cancel, timeout_s=math.inf) as check:  # long work, kept cue by cue as it goes
            atomic_write_text(folder / job["source"], text)
            atomic_write_json(folder / "job.json", job)
            result = self._run_dubbing(job_id, checking(progress, check), check, on_cue)
        progress(1.0, "done")
        return result

    def regenerate_dub_cue(self, job_id: str, cue: int, *, seed: int | None = None, emotion: EmotionSpec | None = None,
                           progress: ProgressFn = no_progress, cancel: threading.Event | None = None) -> DubbingResult:
        """Render one cue again with a new seed (a random one unless given) and/or emotion; the
        other cues come from the job's store. NotFound("dubbing job") / ValidationError("cue")."""
        job = self._load_job(job_id)
        numbers = [c["number"] for c in job["cues"]]
        if isinstance(cue, bool) or not isinstance(cue, int) or cue not in numbers:
            raise ValidationError("cue", f"must be one of the job's cue numbers 1..{len(numbers)}, got {cue!r}")
        row = job["cues"][numbers.index(cue)]
        if emotion is not None:
            try:
                emotion.validate()
            except ValueError as e:
                raise ValidationError("emotion", str(e)) from e
            row["emotion"] = emotion.to_record()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise ValidationError("seed", f"must be a whole number in [0, 2^32), got {seed!r}")
        row["seed"] = seed if seed is not None else (random.randrange(2**32) if emotion is None else row["seed"])
        with self.job(cancel, timeout_s=math.inf) as check:
            atomic_write_json(self._dubbing_root() / job_id / "job.json", job)
            result = self._run_dubbing(job_id, checking(progress, check), check)
        progress(1.0, "done")
        return result

    def get_dubbing(self, job_id: str) -> DubbingResult:
        """A finished job's files and report. NotFound when there is no such job or it never finished."""
        folder = self._job_folder(job_id)
        job = self._load_job(job_id)
        fmt = audio_format(job["output_format"])
        try:
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))["cues"]
        except (OSError, ValueError, KeyError) as e:
            raise NotFound("dubbing job", job_id, "job") from e
        retimed = folder / "retimed.srt"
        return DubbingResult(job_id, folder, folder / f"track{fmt.suffix}", [folder / "cues" / f"{r['index']:03d}{fmt.suffix}" for r in report],
                             report, folder / job["source"], retimed if retimed.is_file() else None, fmt.name, 0)

    def dubbing_zip(self, job_id: str) -> bytes:
        """A finished job as a zip: track.<fmt>, cues/NNN.<fmt>, report.json, the subtitles."""
        result = self.get_dubbing(job_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in [result.track_path, result.folder / "report.json", result.source_path, *result.cue_paths,
                         *([result.retimed_path] if result.retimed_path else [])]:
                archive.write(path, path.relative_to(result.folder).as_posix())
        return buffer.getvalue()

    # -- internals ----------------------------------------------------------------------------

    def _job_folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise NotFound("dubbing job", job_id, "job")
        return self._dubbing_root() / job_id

    def _load_job(self, job_id: str) -> dict:
        try:
            return json.loads((self._job_folder(job_id) / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise NotFound("dubbing job", job_id, "job") from e

    def _run_dubbing(self, job_id: str, progress: ProgressFn, check: Callable[[], None],
                     on_cue: Callable[[dict, np.ndarray], None] | None = None) -> DubbingResult:
        """The admitted part: render the cues the store lacks, place them, write the outputs."""
        folder = self._job_folder(job_id)
        job = self._load_job(job_id)
        fmt = audio_format(job["output_format"])
        settings = {r: RoleSetting(s["voice"], EmotionSpec.from_record(s["emotion"])) for r, s in job["roles"].items()}
        paths = {r: self.voice_path(s.voice) for r, s in settings.items()}
        generation = GenerationParams(**job["generation"])
        rows = [DubCue(**c) for c in job["cues"]]
        store = ClipStore(folder / "clips")
        clips = [_clip(self, row, settings, paths, generation, job["fit"]) for row in rows]
        todo = [i for i, clip in enumerate(clips) if clip.key not in store]
        report, placed = [], []
        for i, (row, clip) in enumerate(zip(rows, clips)):  # in order, so on_cue can stream
            if clip.key not in store:
                n = todo.index(i)
                share = (0.9 * n / len(todo), 0.9 / len(todo))
                cue_progress = lambda f, stage, s=share: progress(s[0] + s[1] * f, f"cue {row.number}: {stage}")
                try:
                    audio, info = render_clip_info(self, clip, cue_progress, check)
                except ValidationError as e:
                    raise ValidationError(e.field if e.field != "text" else "subtitles",
                                          f"cue {row.number}: {str(e).split(': ', 1)[-1]}") from e
                store.put(clip.key, audio)
                store.put_info(clip.key, info)
            line, audio = _place(row, store.get(clip.key), store.info(clip.key), job["fit"])
            check()
            atomic_write_bytes(folder / "cues" / f"{row.number:03d}{fmt.suffix}", encode(audio, OUTPUT_SAMPLE_RATE, fmt))
            report.append(line)
            placed.append(audio)
            if on_cue is not None:
                on_cue(line, audio)
        progress(0.95, "placing the cues")
        track = _mix(rows, placed)
        atomic_write_bytes(folder / f"track{fmt.suffix}", encode(track, OUTPUT_SAMPLE_RATE, fmt))
        retimed = folder / "retimed.srt"
        if any(abs(r["actual_end"] - r["end"]) > 0.0005 for r in report):
            atomic_write_text(retimed, subtitles.to_srt((r["text"], r["start"], r["actual_end"]) for r in report))
        else:
            retimed.unlink(missing_ok=True)
        atomic_write_json(folder / "report.json", {"fit": job["fit"], "sample_rate": OUTPUT_SAMPLE_RATE, "cues": report})
        store.keep_only(c.key for c in clips)
        return replace(self.get_dubbing(job_id), rendered=len(todo))



def _role_settings(synth: Synthesizer, voice: str | None, roles: dict[str, RoleSetting] | None) -> dict[str, RoleSetting]:
    if (voice is None) == (roles is None):
        raise ValidationError("voice", "give either a saved voice or a roles map (role -> voice)")
    if voice is not None:
        settings = {"": voice if isinstance(voice, RoleSetting) else RoleSetting(voice)}
    else:
        if not isinstance(roles, dict) or not roles:
            raise ValidationError("roles", "must map each role to a saved voice")
        settings = dict(roles)
    for role, setting in settings.items():
        if not isinstance(role, str) or not isinstance(setting, RoleSetting):
            raise ValidationError("roles", f"role {role!r}: must map a role name to a voice")
        try:
            synth.voice_path(setting.voice)
        except ValidationError as e:
            raise ValidationError("voice" if voice is not None else "roles",
                                  f"{f'role {role!r}: ' if role else ''}{str(e).split(': ', 1)[-1]}") from e
    return settings


def _clip(synth: Synthesizer, row: DubCue, settings: dict[str, RoleSetting], paths: dict[str, Path],
          generation: GenerationParams, fit: str) -> Clip:
    setting = settings[row.role]
    emotion = EmotionSpec.from_record(row.emotion) if row.emotion else setting.emotion
    return make_clip(synth, row.text, paths[row.role], seed=row.seed, emotion=emotion, generation=generation,
                     max_duration=round(row.end_s - row.start_s, 3) if fit == "fit" else None)


def _place(row: DubCue, audio: np.ndarray, info: dict, fit: str) -> tuple[dict, np.ndarray]:
    """One cue as it goes on the track, and its report row: `fit` and `stretch` cut or stretch
    it into its slot, `natural` lets it run on."""
    rate = OUTPUT_SAMPLE_RATE
    start, slot = round(row.start_s * rate), round(row.end_s * rate) - round(row.start_s * rate)
    speed = 1.0
    if fit == "stretch" or (fit == "fit" and len(audio) > slot + 1):
        speed = min(max(len(audio) / slot, MIN_SPEED), MAX_SPEED)
        audio = time_stretch(audio, rate, speed)
    if fit in ("fit", "stretch") and len(audio) > slot:
        audio = _cut(audio, slot)
    if fit == "stretch" and len(audio) < slot:
        audio = np.concatenate([audio, np.zeros(slot - len(audio), np.int16)])  # a rounding sample, or past 4x
    line = {"index": row.number, "start": round(row.start_s, 3), "end": round(row.end_s, 3),
            "target": round(slot / rate, 4), "actual": round(len(audio) / rate, 4),
            "actual_end": round((start + len(audio)) / rate, 4),
            "factor": round(float(info.get("duration_factor", 1.0)), 4), "stretch": round(speed, 4),
            "overrun": round(max(0, len(audio) - slot) / rate, 4), "role": row.role, "text": row.text,
            "seed": row.seed, "emotion": "custom" if row.emotion else "role"}
    return line, audio


def _mix(rows: list[DubCue], placed: list[np.ndarray]) -> np.ndarray:
    """One track, every cue from its start sample on (natural-mode overruns mix over what follows)."""
    starts = [round(row.start_s * OUTPUT_SAMPLE_RATE) for row in rows]
    length = max(max(s + len(a) for s, a in zip(starts, placed)), round(rows[-1].end_s * OUTPUT_SAMPLE_RATE))
    track = np.zeros(length, np.int32)
    for start, audio in zip(starts, placed):
        track[start: start + len(audio)] += audio
    return np.clip(track, -32768, 32767).astype(np.int16)


def _cut(audio: np.ndarray, n: int) -> np.ndarray:
    """The first n samples, the last FADE_S faded out (no click where the slot ends)."""
    out = audio[:n].astype(np.float32)
    fade = min(n, int(FADE_S * OUTPUT_SAMPLE_RATE))
    if fade:
        out[-fade:] *= np.linspace(1.0, 0.0, fade)
    return np.round(out).astype(np.int16)
