"""SRT subtitles from segment timings. Pure standard library.

A cue per spoken segment, timed by where the segment's audio starts and ends in the output, so
the last cue ends where the speech ends (within a millisecond of rounding).
"""

from __future__ import annotations

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
