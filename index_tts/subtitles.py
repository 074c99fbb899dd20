"""Subtitles: SRT written from segment timings, and SRT or WebVTT files read strictly (for
dubbing). Pure standard library.

Writing: a cue per spoken segment, timed by where the segment's audio starts and ends in the
output, so the last cue ends where the speech ends (within a millisecond of rounding).

Reading (`read_cues`): bytes or text, SRT or WebVTT (told apart by the `WEBVTT` header). Every
problem raises SubtitleError carrying the number of the cue it is in (cues count from 1 in file
order): text that is not UTF-8 (or UTF-16 with a byte-order mark), a timing line that does not
parse, an end not after its start, a cue starting before the previous one ends, a cue with no
text, more than `max_cues` cues. Formatting tags (`<i>`, `<b>`, `<font ...>`, `{\\an8}`) are
dropped; a WebVTT voice tag `<v Name>` becomes the cue's role; square-bracket tags (the studio's
inline emotion and pause tags) are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

MAX_LINE_CHARS = 42   # a common subtitle line length; longer text wraps at a space


def timestamp(seconds: float) -> str:
    """SRT time: HH:MM:SS,mmm (rounded to the millisecond)."""
    ms = max(0, int(round(seconds * 1000)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def _wrap(text: str) -> str:
    """Break long Latin text at spaces; CJK text (no spaces) stays on one line per cue."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > MAX_LINE_CHARS:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "\n".join(lines)


def to_srt(cues: Iterable[tuple[str, float, float]]) -> str:
    """(text, start_s, end_s) in order -> the text of an .srt file."""
    blocks = []
    for number, (text, start, end) in enumerate((c for c in cues if c[0].strip()), start=1):
        blocks.append(f"{number}\n{timestamp(start)} --> {timestamp(max(end, start))}\n{_wrap(text.strip())}\n")
    return "\n".join(blocks)


def to_vtt(cues: Iterable[tuple[str, float, float]]) -> str:
    """(text, start_s, end_s) in order -> the text of a .vtt file."""
    blocks = ["WEBVTT\n"]
    for text, start, end in (c for c in cues if c[0].strip()):
        stamps = (timestamp(start).replace(",", "."), timestamp(max(end, start)).replace(",", "."))
        blocks.append(f"{stamps[0]} --> {stamps[1]}\n{_wrap(text.strip())}\n")
    return "\n".join(blocks)


def parse_srt(srt: str) -> list[tuple[str, float, float]]:
    """The cues of an .srt file (for tests and for checking uploads): (text, start_s, end_s)."""
    cues = []
    for block in srt.strip().split("\n\n"):
        lines = block.strip().splitlines()
        if len(lines) < 2 or "-->" not in lines[1]:
            continue
        start, end = (_seconds(part.strip()) for part in lines[1].split("-->"))
        cues.append(("\n".join(lines[2:]), start, end))
    return cues


def _seconds(stamp: str) -> float:
    hms, ms = stamp.split(",")
    hours, minutes, secs = (int(x) for x in hms.split(":"))
    return hours * 3600 + minutes * 60 + secs + int(ms) / 1000


# ---------------------------------------------------------------------------------------------
# reading subtitle files strictly

_STAMP = re.compile(r"^(?:(\d{1,3}):)?([0-5]?\d):([0-5]\d)[,.](\d{3})$")
_FORMATTING = re.compile(r"</?(?:i|b|u|s|c|font|ruby|rt|lang)(?:[ .][^>]*)?>|\{\\[^}]*\}|<\d{1,3}:\d{2}[:.][\d:.]*>", re.I)
_VOICE = re.compile(r"<v(?:\.[^ >]*)?\s+([^>]+)>", re.I)


class SubtitleError(ValueError):
    """A subtitle file that cannot be used; `cue` is the number of the cue at fault (0: the file)."""

    def __init__(self, cue: int, message: str):
        super().__init__(f"cue {cue}: {message}" if cue else message)
        self.cue = cue


@dataclass(frozen=True)
class Cue:
    number: int      # position in the file, from 1
    start_s: float
    end_s: float
    text: str        # formatting tags removed, lines joined by a space
    role: str = ""   # a WebVTT <v Name> voice tag; `Role:` prefixes are left to the caller

    @property
    def slot_s(self) -> float:
        return self.end_s - self.start_s


def decode_subtitles(data: bytes | str) -> str:
    """Bytes -> text: UTF-8 (a BOM is dropped) or UTF-16 with a BOM. SubtitleError naming the cue
    that holds the first undecodable byte otherwise."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise SubtitleError(0, f"is not valid UTF-16 ({e.reason} at byte {e.start})") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", errors="replace")
        cue = max(before.count("-->"), 1)
        raise SubtitleError(cue, f"is not UTF-8 text (byte {e.start}: 0x{data[e.start]:02x}); save the file as UTF-8") from e


def parse_timestamp(stamp: str) -> float:
    """`HH:MM:SS,mmm`, `HH:MM:SS.mmm` or `MM:SS.mmm` -> seconds; ValueError otherwise."""
    match = _STAMP.match(stamp.strip())
    if not match:
        raise ValueError(f"bad timestamp {stamp.strip()[:30]!r} (expected HH:MM:SS,mmm)")
    hours, minutes, secs, ms = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs + ms / 1000


def read_cues(data: bytes | str, max_cues: int = 2000, max_chars: int = 5000) -> list[Cue]:
    """The cues of an SRT or WebVTT file, checked (see the module's docstring)."""
    text = decode_subtitles(data).replace("\r\n", "\n").replace("\r", "\n")
    blocks = [b.strip("\n") for b in re.split(r"\n[ \t]*\n", text.strip()) if b.strip()]
    if blocks and blocks[0].startswith("WEBVTT"):
        blocks = [b for b in blocks[1:] if not re.match(r"^(NOTE|STYLE|REGION)\b", b)]
    cues: list[Cue] = []
    for block in blocks:
        number = len(cues) + 1
        if number > max_cues:
            raise SubtitleError(number, f"the file has more than {max_cues} cues; split it")
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if timing is None:
            raise SubtitleError(number, f"has no timing line `start --> end` ({lines[0].strip()[:40]!r})")
        start_text, _, rest = lines[timing].partition("-->")
        end_text = rest.strip().split()[0] if rest.strip() else ""
        try:
            start, end = parse_timestamp(start_text), parse_timestamp(end_text)
        except ValueError as e:
            raise SubtitleError(number, str(e)) from None
        if end <= start:
            raise SubtitleError(number, f"ends ({timestamp(end)}) before it starts ({timestamp(start)})")
        if cues and start < cues[-1].end_s:
            raise SubtitleError(number, f"starts at {timestamp(start)}, before cue {number - 1} ends ({timestamp(cues[-1].end_s)})")
        body = " ".join(line.strip() for line in lines[timing + 1:] if line.strip())
        voice = _VOICE.search(body)
        role = voice.group(1).strip() if voice else ""
        body = " ".join(_FORMATTING.sub("", _VOICE.sub("", body)).replace("</v>", "").split())
        if not body:
            raise SubtitleError(number, "has no text")
        if len(body) > max_chars:
            raise SubtitleError(number, f"is too long ({len(body)} characters; at most {max_chars})")
        cues.append(Cue(number, start, end, body, role))
    if not cues:
        raise SubtitleError(0, "holds no cues (expected SRT or WebVTT)")
    return cues
