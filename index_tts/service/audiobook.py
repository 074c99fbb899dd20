"""A project's export: a file per chapter, and the audiobook, MP3 with ID3v2 chapter frames (CHAP,
one per chapter, under one ordered CTOC) that podcast and audiobook players show as chapters,
with its chapter SRT."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from mutagen.id3 import CHAP, CTOC, ID3, TALB, TIT2, CTOCFlags

from index_tts.encoding import AudioFormat, encode
from index_tts.fileio import atomic_write_bytes, atomic_write_text
from index_tts.service.render import OUTPUT_SAMPLE_RATE
from index_tts.storage import sanitize_name
from index_tts.subtitles import to_srt

PARAGRAPH_PAUSE_MS = 500             # between segments in a chapter file
CHAPTER_PAUSE_MS = 1500              # after each chapter in the audiobook


def write_book(folder: Path, title: str, chapters: list[tuple[str, list[np.ndarray]]],
               fmt: AudioFormat) -> tuple[Path, list[Path], Path, Path, float]:
    """Chapters (title, segment audio in order) -> `NN Title<suffix>` each, `<title>.mp3` with
    chapter frames and `<title>.srt`, written atomically into `folder`:
    (folder, chapter files, book, srt, book duration in s)."""
    gap = np.zeros(OUTPUT_SAMPLE_RATE * PARAGRAPH_PAUSE_MS // 1000, np.int16)
    tail = np.zeros(OUTPUT_SAMPLE_RATE * CHAPTER_PAUSE_MS // 1000, np.int16)
    files, book, marks, at = [], [], [], 0
    for i, (name, segments) in enumerate(chapters):
        pieces = [p for audio in segments for p in (gap, audio)][1:]
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        path = folder / f"{i + 1:02d} {_file_part(name, 'chapter')}{fmt.suffix}"
        files.append(atomic_write_bytes(path, encode(audio, OUTPUT_SAMPLE_RATE, fmt)))
        audio = np.concatenate([audio, tail]) if i < len(chapters) - 1 else audio
        marks.append((name, at / OUTPUT_SAMPLE_RATE, (at + len(audio)) / OUTPUT_SAMPLE_RATE))
        book.append(audio)
        at += len(audio)
    base = _file_part(title, "audiobook")
    book_path = atomic_write_bytes(folder / f"{base}.mp3", chapter_mp3(np.concatenate(book), OUTPUT_SAMPLE_RATE, title, marks))
    srt = atomic_write_text(folder / f"{base}.srt", to_srt(marks))
    return folder, files, book_path, srt, at / OUTPUT_SAMPLE_RATE


def chapter_mp3(pcm: np.ndarray, sample_rate: int, title: str, chapters: list[tuple[str, float, float]]) -> bytes:
    """int16 mono speech and its chapters (title, start s, end s) -> the bytes of a tagged MP3."""
    buffer = io.BytesIO(encode(pcm, sample_rate, "mp3"))
    tags = ID3()
    tags.add(TIT2(text=[title]))
    tags.add(TALB(text=[title]))
    ids = [f"ch{i}" for i in range(len(chapters))]
    tags.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=ids,
                  sub_frames=[TIT2(text=[title])]))
    for element_id, (name, start, end) in zip(ids, chapters):
        tags.add(CHAP(element_id=element_id, start_time=int(round(start * 1000)), end_time=int(round(end * 1000)),
                      sub_frames=[TIT2(text=[name])]))
    tags.save(buffer)
    return buffer.getvalue()


def read_chapters(path) -> list[tuple[str, float, float]]:
    """The chapters an MP3's ID3 tags hold, in the table of contents' order (title, start s, end s)."""
    tags = ID3(path)
    chapters = {frame.element_id: frame for frame in tags.getall("CHAP")}
    order = tags.getall("CTOC")[0].child_element_ids if tags.getall("CTOC") else sorted(chapters)
    return [(str(chapters[i].sub_frames["TIT2"].text[0]), chapters[i].start_time / 1000, chapters[i].end_time / 1000)
            for i in order if i in chapters]


def _file_part(title: str, fallback: str) -> str:
    try:
        return sanitize_name(title, "file")
    except ValueError:
        return fallback
