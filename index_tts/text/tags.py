"""Inline emotion and pause tags in the text to speak: a pure parser, no engine (named tags are
the built-in presets of `index_tts/emotion_presets.json`).

Syntax (see docs/creator-guide.md):

    [happy]  [sad:0.6]  [开心]  [兴奋]        a built-in preset; the number is its weight (0..1)
    [vector 0,0,0.7,0,0,0,0,0.2]              8 values in EMOTIONS order (optionally `:weight`)
    [pause 500ms]  [pause 1.5s]  [停顿 500毫秒]  silence at that point (up to 10 s)
    [default]  [默认]                          back to the request's own emotion
    [[                                        a literal "["

Square brackets are ASCII `[ ]` or full-width `［ ］` (what a Chinese IME types in full-width
mode). `【 】` are never tags: Chinese text uses them as ordinary title brackets.

An emotion tag applies from the start of the sentence it sits in until the next emotion tag; a
pause is a hard break exactly where it stands. The result is a list of `Speech` and `Pause` items
in order. Malformed tags raise `TagError`, whose message names the line, column and the tag.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from index_tts.emotion import EMOTIONS, builtin_presets, find_preset, preset_spec

OPENERS = "[［"
CLOSERS = "]］"
MAX_TAG_CHARS = 120
MAX_PAUSE_MS = 10000
VECTOR_WEIGHT = 0.8

# A named tag ([angry], [兴奋], [cold anger]) is the built-in preset of that name (emotion_presets.json).
RESET_NAMES = ("default", "reset", "默认", "还原")
VECTOR_WORDS = ("vector", "vec", "向量")
PAUSE_WORDS = ("pause", "break", "停顿", "暂停")

# Where a sentence ends, so an emotion tag can reach back to the start of its sentence.
_SENTENCE_END = re.compile(r"[。！？!?；;…\n]+[”\"'’）)]*|\.(?=\s|$)")
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_PAUSE = re.compile(rf"^(?:{'|'.join(PAUSE_WORDS)})\s*[:：]?\s*({_NUMBER})\s*(ms|s|毫秒|秒)?$", re.IGNORECASE)
_WEIGHTED = re.compile(rf"^(.*?)\s*[:：]\s*({_NUMBER})$")


@dataclass(frozen=True)
class EmotionTag:
    """A tag's emotion: `vector` is what the engine receives (EMOTIONS order), `weight` the emo_alpha."""

    label: str
    vector: tuple[float, ...]
    weight: float


@dataclass(frozen=True)
class Speech:
    """Text to speak with one emotion (None: the request's own)."""

    text: str
    emotion: EmotionTag | None


@dataclass(frozen=True)
class Pause:
    ms: int


class TagError(ValueError):
    """A malformed tag. `offset` is its index in the text; `line` and `column` count from 1."""

    def __init__(self, text: str, offset: int, problem: str):
        self.offset = offset
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        line_end = text.find("\n", offset)
        self.snippet = text[offset: line_end if line_end >= 0 else len(text)][:40]
        super().__init__(f"tag at line {self.line}, column {self.column} ({self.snippet!r}): {problem}")


def known_tags() -> str:
    """The tag words, for error messages and docs."""
    return ", ".join(p["id"] for p in builtin_presets()) + ", vector, pause, default"


def _fraction(text: str, value: str, offset: int, what: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise TagError(text, offset, f"{what} must be between 0 and 1, got {value}")
    return number


def _interpret(source: str, body: str, offset: int) -> EmotionTag | Pause | None:
    """One tag's contents -> an emotion, a pause, or None (back to the request's emotion)."""
    body = body.strip()
    folded = body.casefold()
    if not body:
        raise TagError(source, offset, 'empty tag; write "[[" for a literal "["')
    if pause := _PAUSE.match(body):
        amount, unit = float(pause.group(1)), (pause.group(2) or "ms").lower()
        ms = amount * 1000 if unit in ("s", "秒") else amount
        if not 0 < ms <= MAX_PAUSE_MS:
            raise TagError(source, offset, f"a pause must be longer than 0 and at most {MAX_PAUSE_MS} ms")
        return Pause(int(round(ms)))
    if folded.startswith(PAUSE_WORDS):
        raise TagError(source, offset, "a pause needs a length, like [pause 500ms] or [pause 1.5s]")
    if folded in RESET_NAMES:
        return None

    weight: float | None = None
    if weighted := _WEIGHTED.match(body):
        body, weight = weighted.group(1).strip(), _fraction(source, weighted.group(2), offset, "the weight")
        folded = body.casefold()

    first, _, rest = body.partition(" ")
    if first.casefold() in VECTOR_WORDS or folded.startswith("向量"):
        rest = body[len("向量"):] if folded.startswith("向量") else rest
        values = [v for v in re.split(r"[\s,，、]+", rest.strip()) if v]
        if len(values) != len(EMOTIONS):
            raise TagError(source, offset, f"a vector needs {len(EMOTIONS)} numbers ({', '.join(EMOTIONS)}), got {len(values)}")
        try:
            numbers = tuple(float(v) for v in values)
        except ValueError:
            raise TagError(source, offset, "vector values must be numbers") from None
        if any(not math.isfinite(v) or not 0.0 <= v <= 1.0 for v in numbers):
            raise TagError(source, offset, "vector values must be between 0 and 1")
        if not any(numbers):
            raise TagError(source, offset, "a vector needs at least one value above 0")
        return EmotionTag("vector", numbers, VECTOR_WEIGHT if weight is None else weight)

    preset = find_preset(body)
    if preset is None:
        raise TagError(source, offset, f'unknown tag {body!r}; known: {known_tags()}; write "[[" for a literal "["')
    spec = preset_spec(preset["id"], weight)
    return EmotionTag(preset["id"], spec.vector, spec.weight)


def _sentence_start(buffer: str) -> int:
    """Index in `buffer` where its last (unfinished) sentence starts."""
    ends = [m.end() for m in _SENTENCE_END.finditer(buffer)]
    return ends[-1] if ends else 0


def parse(text: str) -> list[Speech | Pause]:
    """Split `text` into Speech and Pause items; raise TagError at the first malformed tag.

    Text without tags gives one Speech with emotion None. Whitespace-only speech is dropped.
    """
    items: list[Speech | Pause] = []
    emotion: EmotionTag | None = None
    buffer = ""

    def flush(upto: int | None = None) -> None:
        """Emit the buffered text (or its first `upto` characters) with the current emotion."""
        nonlocal buffer
        head, buffer = (buffer, "") if upto is None else (buffer[:upto], buffer[upto:])
        if head.strip():
            # A removed tag leaves its two neighbouring spaces behind; keep one.
            items.append(Speech(re.sub(r"[ \t]{2,}", " ", head.strip()), emotion))

    i = 0
    while i < len(text):
        ch = text[i]
        if ch not in OPENERS:
            buffer += ch
            i += 1
            continue
        if text[i + 1: i + 2] == ch:     # "[[" -> a literal "["
            buffer += ch
            i += 2
            continue
        close = i + 1
        while close < len(text) and text[close] not in CLOSERS:
            if text[close] in OPENERS or text[close] == "\n":
                break
            close += 1
        if close >= len(text) or text[close] not in CLOSERS:
            raise TagError(text, i, 'this "[" is never closed; write "[[" for a literal "["')
        if close - i - 1 > MAX_TAG_CHARS:
            raise TagError(text, i, f"a tag is at most {MAX_TAG_CHARS} characters")
        meaning = _interpret(text, text[i + 1: close], i)
        if isinstance(meaning, Pause):
            flush()
            items.append(meaning)
        else:
            flush(_sentence_start(buffer))  # the new emotion reaches back to the start of this sentence
            emotion = meaning
        i = close + 1
    flush()
    return items


def strip_tags(text: str) -> str:
    """The words alone (tags removed, "[[" unescaped), e.g. for a history title. Raises TagError."""
    return " ".join(item.text for item in parse(text) if isinstance(item, Speech))
