"""Books in, chapters out: plain text, Markdown and EPUB read into titled chapters, and a
chapter's text cut into segments (the clips a project renders).

    plain text   one chapter, titled after the file
    Markdown     each `# heading` (level 1) starts a chapter; lower headings stay as text;
                 emphasis, links and images are reduced to their words
    EPUB         the spine's documents in order, one chapter each (empty ones, like a cover,
                 skipped), titled by their first heading or <title>; standard zip + HTML parser

Segments are paragraphs, and a long paragraph is cut at sentence ends (at commas, then
spaces, for a sentence that alone is too long). Inline tags work: an emotion tag reaches to the
next emotion tag, so a segment that starts under one carries it at its front.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from io import BytesIO
from urllib.parse import unquote
from xml.etree import ElementTree

from index_tts.service.checks import bad_character
from index_tts.service.errors import ValidationError
from index_tts.text import tags

MAX_BOOK_BYTES = 64 * 1024 * 1024        # the file as uploaded
MAX_BOOK_CHARS = 3_000_000               # about 6 long novels
MAX_CHAPTERS = 1000
SEGMENT_CHARS = 400                      # a segment's length at most: a few sentences
MARKDOWN_SUFFIXES = (".md", ".markdown")


@dataclass(frozen=True)
class ChapterText:
    title: str
    text: str


def read_book(filename: str, data: bytes) -> tuple[str, list[ChapterText]]:
    """(the book's title, its chapters) from a file's name and bytes; ValidationError("file")
    for an empty, oversized, undecodable or malformed file."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValidationError("file", "is empty")
    if len(data) > MAX_BOOK_BYTES:
        raise ValidationError("file", f"is too large ({len(data)} bytes; at most {MAX_BOOK_BYTES})")
    stem, suffix = posixpath.splitext(posixpath.basename(str(filename).replace("\\", "/")))
    suffix = suffix.lower()
    if suffix == ".epub":
        title, chapters = _read_epub(bytes(data))
    else:
        text = _decode(data)
        title, chapters = (_read_markdown(text) if suffix in MARKDOWN_SUFFIXES else (None, [ChapterText(stem, text)]))
    chapters = [ChapterText(_plain(c.title)[:200] or f"Chapter {i + 1}", c.text.strip()) for i, c in enumerate(chapters)]
    chapters = [c for c in chapters if c.text]
    if not chapters:
        raise ValidationError("file", "has nothing to read (no text in any chapter)")
    if len(chapters) > MAX_CHAPTERS:
        raise ValidationError("file", f"has {len(chapters)} chapters; at most {MAX_CHAPTERS}")
    total = sum(len(c.text) for c in chapters)
    if total > MAX_BOOK_CHARS:
        raise ValidationError("file", f"is too long ({total} characters of text; at most {MAX_BOOK_CHARS})")
    for i, chapter in enumerate(chapters):
        check_chapter_text(chapter.text, f"chapters[{i}].text")
    return (title or stem or "Untitled").strip()[:200], chapters


def check_chapter_text(text: str, field: str) -> None:
    """No control characters, and well-formed inline tags (the error points at the bad tag)."""
    problem = bad_character(text, "\n\r\t")
    if problem:
        raise ValidationError(field, f"contains {problem}")
    try:
        tags.parse(text)
    except tags.TagError as e:
        raise ValidationError(field, str(e)) from e


def _plain(title: str) -> str:
    """A title is shown, not spoken: inline tags in it are dropped."""
    try:
        return " ".join(tags.strip_tags(title).split())
    except tags.TagError:
        return " ".join(title.split())


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as e:
        raise ValidationError("file", f"is not UTF-8 text (byte {e.start}); save it as UTF-8, or import an EPUB") from e


# -- Markdown ---------------------------------------------------------------------------------

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"(?<!\[)\[([^\[\]]+)\]\([^)]*\)")   # [words](url); an inline tag has no (url)
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|`+)")
_LINE_MARK = re.compile(r"^\s{0,3}(?:#{2,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)")


def _read_markdown(text: str) -> tuple[str | None, list[ChapterText]]:
    chapters: list[ChapterText] = []
    title, lines = "", []
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and re.match(r"^#\s+\S", line):
            chapters.append(ChapterText(title, "\n".join(lines)))
            title, lines = line[1:].strip().strip("#").strip(), []
            continue
        heading = not fenced and re.match(r"^\s{0,3}#{2,6}\s", line)
        line = _LINE_MARK.sub("", line) if not fenced else line
        line = _EMPHASIS.sub("", _LINK.sub(r"\1", _IMAGE.sub("", line)))
        lines += ["", line, ""] if heading else [line]   # a lower heading is a paragraph of its own
    chapters.append(ChapterText(title, "\n".join(lines)))
    if not chapters[0].text.strip():
        chapters.pop(0)
    elif not chapters[0].title:
        chapters[0] = ChapterText("Opening", chapters[0].text)
    return None, chapters


# -- EPUB -------------------------------------------------------------------------------------

MAX_EPUB_UNPACKED = 256 * 1024 * 1024    # a zip bomb stops here
_BLOCKS = {"p", "div", "br", "li", "tr", "section", "article", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"}
_SKIPPED = {"head", "script", "style", "nav"}


class _HtmlText(HTMLParser):
    """The words of an XHTML document, a paragraph per block, and its first heading."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.heading: str | None = None
        self.title = ""
        self._skip = 0
        self._in_heading = self._in_title = False
        self._heading_words: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag in _BLOCKS:
            self.parts.append("\n\n")
        if tag in ("h1", "h2", "h3") and self.heading is None:
            self._in_heading, self._heading_words = True, []

    def handle_endtag(self, tag):
        if tag in _SKIPPED and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in _BLOCKS:
            self.parts.append("\n\n")
        if tag in ("h1", "h2", "h3") and self._in_heading:
            self._in_heading = False
            self.heading = " ".join("".join(self._heading_words).split())

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._skip:
            return
        self.parts.append(data)
        if self._in_heading:
            self._heading_words.append(data)

    def text(self) -> str:
        paragraphs = ("".join(self.parts)).split("\n\n")
        return "\n\n".join(p for p in (" ".join(p.split()) for p in paragraphs) if p)


def _xml(archive: zipfile.ZipFile, name: str, what: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(archive.read(name))
    except KeyError as e:
        raise ValidationError("file", f"is not a valid EPUB (no {name}, the {what})") from e
    except ElementTree.ParseError as e:
        raise ValidationError("file", f"is not a valid EPUB ({name}, the {what}, is not XML: {e})") from e


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read_epub(data: bytes) -> tuple[str | None, list[ChapterText]]:
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ValidationError("file", "is not a valid EPUB (not a zip archive)") from e
    with archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_EPUB_UNPACKED:
            raise ValidationError("file", f"unpacks to more than {MAX_EPUB_UNPACKED} bytes")
        container = _xml(archive, "META-INF/container.xml", "container")
        rootfile = next((e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None)
        if not rootfile:
            raise ValidationError("file", "is not a valid EPUB (its container names no package file)")
        package = _xml(archive, rootfile, "package file")
        base = posixpath.dirname(rootfile)
        manifest = {e.get("id"): e for e in package.iter() if _local(e.tag) == "item"}
        spine = [e.get("idref") for e in package.iter() if _local(e.tag) == "itemref" and e.get("linear") != "no"]
        title = next((e.text for e in package.iter() if _local(e.tag) == "title" and e.text), None)
        if not spine:
            raise ValidationError("file", "is not a valid EPUB (its spine is empty)")
        chapters = []
        for idref in spine:
            item = manifest.get(idref)
            if item is None or not item.get("href"):
                raise ValidationError("file", f"is not a valid EPUB (the spine names {idref!r}, which its manifest lacks)")
            name = posixpath.normpath(posixpath.join(base, unquote(item.get("href"))))
            try:
                page = archive.read(name).decode("utf-8", errors="replace")
            except KeyError as e:
                raise ValidationError("file", f"is not a valid EPUB (it lacks {name}, named in its manifest)") from e
            parser = _HtmlText()
            parser.feed(page)
            parser.close()
            chapters.append(ChapterText(parser.heading or " ".join(parser.title.split()), parser.text()))
    return title, chapters


# -- segments ---------------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?。！？…])[\"'”’)）]*\s+|(?<=[。！？；])")
_WIDE_MARKS = "。！？；，、：…”’）"
_TAG = re.compile(r"(?<![\[［])[\[［]([^\[\]［］]*)[\]］]")


def split_segments(text: str, max_chars: int = SEGMENT_CHARS) -> list[str]:
    """A chapter's segments: its paragraphs, long ones cut at sentence ends, each at most about
    `max_chars` (a word longer than that stays whole). An emotion tag in force at a segment's
    start is repeated at its front, so each segment speaks as it would in the whole text."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            pieces += _pack(_SENTENCE.split(paragraph), max_chars)
    segments, emotion = [], None
    for piece in pieces:
        first = _TAG.match(piece)
        starts_tagged = first is not None and _tag_kind(first.group(1)) != "pause"
        segments.append(piece if emotion is None or starts_tagged else f"[{emotion}] {piece}")
        for raw in _TAG.findall(piece):
            kind = _tag_kind(raw)
            if kind == "reset":
                emotion = None
            elif kind == "emotion":
                emotion = raw
    return segments


def _pack(sentences: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    for sentence in (s.strip() for s in sentences):
        if not sentence:
            continue
        for part in _cut(sentence, max_chars):
            if out and len(out[-1]) + 1 + len(part) <= max_chars:
                out[-1] += ("" if out[-1][-1] in _WIDE_MARKS else " ") + part   # Chinese text has no spaces
            else:
                out.append(part)
    return out


def _cut(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than max_chars, cut after commas, then at spaces (never inside a tag,
    never inside a number like 1,000); the pieces put back together are the sentence."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces = re.findall(r".+?(?:[,:;]\s+|[，、；：]|\s+(?![^\[［]*[\]］])|$)", sentence)
    parts = [""]
    for piece in pieces:
        if parts[-1].strip() and len(parts[-1]) + len(piece) > max_chars:
            parts.append(piece)
        else:
            parts[-1] += piece
    parts = [p.strip() for p in parts if p.strip()]
    # An emotion tag reaches back to the start of its sentence: the parts before it carry it too.
    first = next((m for m in _TAG.finditer(sentence) if _tag_kind(m.group(1)) != "pause"), None)
    if first is not None and _tag_kind(first.group(1)) == "emotion":
        at = next(i for i, p in enumerate(parts) if first.group(0) in p)
        parts = [f"{first.group(0)} {p}" for p in parts[:at]] + parts[at:]
    return parts


def _tag_kind(raw: str) -> str:
    """'pause', 'reset' or 'emotion' for a well-formed tag's inside (the text was checked)."""
    items = tags.parse(f"[{raw}] x")
    if isinstance(items[0], tags.Pause):
        return "pause"
    return "emotion" if items[0].emotion is not None else "reset"
