"""Text normalisation in front of the BPE tokenizer: upstream IndexTTS2's `TextNormalizer` (v2.0).

Numbers, dates, money and so on are spelled out by WeTextProcessing's FST grammars (the backend
upstream uses on Linux). Around that call sit upstream's own rules, copied because the checkpoint's
BPE vocabulary was trained on their output:

- before: `it's` -> `it is` (a closed list of words), an optional glossary, and protection of
  `A-B` tech terms; on the Chinese path also of pinyin with tone (`xuan4`) and of names with `·`;
- after: punctuation mapped to the few ASCII marks the vocabulary knows.

The FST normalisers take minutes to build, so they are built lazily, once per process, and the
Chinese grammar (built with non-default options, so it cannot use the FSTs shipped in the wheel) is
cached on disk under the user's cache directory (`$INDEX_TTS_TN_CACHE` overrides it). Loading never
touches the network.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import traceback
import warnings
from pathlib import Path

# Upstream `char_rep_map`. Order matters: the keys become one regex alternation, tried left to right
# at each position, so e.g. "，" wins over "，，，" exactly as upstream (which thereby never sees "，，，").
PUNCTUATION_MAP = {
    "：": ",",
    "；": ",",
    ";": ",",
    "，": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "\n": " ",
    "·": "-",
    "、": ",",
    "...": "…",
    ",,,": "…",
    "，，，": "…",
    "……": "…",
    "“": "'",
    "”": "'",
    '"': "'",
    "‘": "'",
    "’": "'",
    "（": "'",
    "）": "'",
    "(": "'",
    ")": "'",
    "《": "'",
    "》": "'",
    "【": "'",
    "】": "'",
    "[": "'",
    "]": "'",
    "—": "-",
    "～": "-",
    "~": "-",
    "「": "'",
    "」": "'",
    ":": ",",
}
ZH_PUNCTUATION_MAP = {"$": ".", **PUNCTUATION_MAP}

# pinyin + tone digit 1-5 (5 = neutral tone): xuan4, jve2, zhong4; not beta1 or voice2.
PINYIN_TONE_PATTERN = re.compile(
    r"(?<![a-z])((?:[bpmfdtnlgkhjqxzcsryw]|[zcs]h)?(?:[aeiouüv]|[ae]i|u[aio]|ao|ou|i[aue]|[uüv]e|[uvü]ang?"
    r"|uai|[aeiuv]n|[aeio]ng|ia[no]|i[ao]ng)|ng|er)([1-5])",
    re.IGNORECASE,
)
# Chinese names joined by ·, - or —: 克里斯托弗·诺兰, 约瑟夫·高登-莱维特.
NAME_PATTERN = re.compile(r"[\u4e00-\u9fff]+(?:[-·—][\u4e00-\u9fff]+){1,2}", re.IGNORECASE)
# Hyphenated tech terms starting with a letter (GPT-5-nano, F5-TTS); phone numbers do not match.
TECH_TERM_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+")
# Only these words' 's becomes " is"; other 's (possessives) stay.
CONTRACTION_PATTERN = re.compile(r"(what|where|who|which|how|t?here|it|s?he|that|this)'s", re.IGNORECASE)
EMAIL_PATTERN = re.compile(r"^[a-zA-Z0-9]+@[a-zA-Z0-9]+\.[a-zA-Z]+$")
HYPHEN_PLACEHOLDER = "<H>"

CACHE_ENV = "INDEX_TTS_TN_CACHE"


def _alternation(mapping: dict[str, str]) -> re.Pattern:
    return re.compile("|".join(re.escape(k) for k in mapping))


_PUNCTUATION_RE = _alternation(PUNCTUATION_MAP)
_ZH_PUNCTUATION_RE = _alternation(ZH_PUNCTUATION_MAP)


def default_cache_dir() -> Path:
    """Where the Chinese FSTs are cached: $INDEX_TTS_TN_CACHE, else a folder named after the
    WeTextProcessing version and options under <user cache>/index_tts (a new version rebuilds)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from importlib.metadata import PackageNotFoundError, version

    try:
        tag = version("WeTextProcessing")
    except PackageNotFoundError:
        tag = "unknown"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "index_tts" / f"wetextprocessing-{tag}-zh-keep-interjections-erhua"


def use_chinese(text: str) -> bool:
    """Upstream's path decision: CJK ideographs, no Latin letters, an e-mail, or pinyin with tone."""
    has_chinese = re.search(r"[\u4e00-\u9fff]", text) is not None
    has_alpha = re.search(r"[a-zA-Z]", text) is not None
    if has_chinese or not has_alpha or EMAIL_PATTERN.match(text):
        return True
    return PINYIN_TONE_PATTERN.search(text) is not None


def correct_pinyin(pinyin: str) -> str:
    """j/q/x + u/ü is written with v in the vocabulary (ju -> JV), upper-cased; other pinyin as is."""
    if pinyin[0] not in "jqxJQX":
        return pinyin
    return re.sub(r"([jqx])[uü](n|e|an)*(\d)", r"\g<1>v\g<2>\g<3>", pinyin, flags=re.IGNORECASE).upper()


# ---------------------------------------------------------------------------------------------
# FST backends: built once per process, shared by every TextNormalizer.

_BACKEND_LOCK = threading.Lock()
_CALL_LOCK = threading.Lock()  # pynini makes no thread-safety promise; a call takes ~20 ms
_CHINESE: dict[str, object] = {}  # by cache dir
_ENGLISH: list[object] = []


def _load_backends(cache_dir: Path) -> tuple[object, object]:
    with _BACKEND_LOCK:
        if str(cache_dir) not in _CHINESE:
            _CHINESE[str(cache_dir)] = _build_chinese(cache_dir)
        if not _ENGLISH:
            from tn.english.normalizer import Normalizer as EnglishNormalizer

            # The English grammar uses its defaults, so the FSTs shipped inside the wheel serve.
            _ENGLISH.append(EnglishNormalizer(overwrite_cache=False))
        return _CHINESE[str(cache_dir)], _ENGLISH[0]


def _build_chinese(cache_dir: Path) -> object:
    from tn.chinese.normalizer import Normalizer as ChineseNormalizer

    options = dict(remove_interjections=False, remove_erhua=False)
    names = ("zh_tn_tagger.fst", "zh_tn_verbalizer.fst")
    if all((cache_dir / n).exists() for n in names):
        return ChineseNormalizer(cache_dir=str(cache_dir), overwrite_cache=False, **options)
    # Build in a private directory and move the files in, so that a second process never reads a
    # half-written FST.
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        normalizer = ChineseNormalizer(cache_dir=tmp, overwrite_cache=True, **options)
        for n in names:
            os.replace(Path(tmp) / n, cache_dir / n)
    return normalizer


# ---------------------------------------------------------------------------------------------


class TextNormalizer:
    """`normalize(text) -> str`, upstream's rules around WeTextProcessing.

    glossary: {term: reading} or {term: {"zh": reading, "en": reading}}; applied case-insensitively,
    longest term first, when `enable_glossary` is true. A per-call glossary given to `normalize`
    is applied as well (its readings win), so one shared normalizer serves requests with
    different glossaries without holding any of them.
    """

    def __init__(self, enable_glossary: bool = False, glossary: dict | None = None, cache_dir: str | Path | None = None):
        self.enable_glossary = enable_glossary
        self.glossary: dict = dict(glossary or {})
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._zh = None
        self._en = None

    def load(self) -> None:
        """Build or load the FST normalisers now (otherwise the first `normalize` does it)."""
        if self._zh is None or self._en is None:
            self._zh, self._en = _load_backends(self.cache_dir)

    def load_glossary(self, glossary: dict) -> None:
        self.glossary.update(glossary)

    def normalize(self, text: str, glossary: dict | None = None) -> str:
        self.load()
        terms = self._glossary_for_call(glossary)
        if use_chinese(text):
            return self._normalize_chinese(text, terms)
        return self._normalize_english(text, terms)

    def _glossary_for_call(self, glossary: dict | None) -> dict:
        terms = dict(self.glossary) if self.enable_glossary else {}
        if glossary:
            # Terms match case-insensitively: a per-call "gpu" replaces a configured "GPU".
            per_call = {t.casefold() for t in glossary}
            terms = {t: r for t, r in terms.items() if t.casefold() not in per_call}
            terms.update(glossary)
        return terms

    def _normalize_chinese(self, text: str, glossary: dict) -> str:
        text = CONTRACTION_PATTERN.sub(r"\1 is", text)
        if glossary:
            text = self.apply_glossary(text, "zh", glossary)
        text, has_terms = _protect_tech_terms(text.rstrip())
        text, pinyins = _protect(text, PINYIN_TONE_PATTERN, "pinyin")
        text, names = _protect(text, NAME_PATTERN, "n")
        try:
            with _CALL_LOCK:
                result = self._zh.normalize(text)
        except Exception:  # upstream prints the traceback and goes on with an empty text
            warnings.warn(f"Chinese normaliser failed on {text!r}:\n{traceback.format_exc()}", RuntimeWarning, stacklevel=3)
            result = ""
        result = _restore(result, names, "n")
        result = _restore(result, {p: correct_pinyin(p) for p in pinyins}, "pinyin")
        if has_terms:
            result = re.sub(r"\s*<H>\s*", "-", result)
        return _ZH_PUNCTUATION_RE.sub(lambda m: ZH_PUNCTUATION_MAP[m.group()], result)

    def _normalize_english(self, text: str, glossary: dict) -> str:
        try:
            text = CONTRACTION_PATTERN.sub(r"\1 is", text)
            if glossary:
                text = self.apply_glossary(text, "en", glossary)
            protected, has_terms = _protect_tech_terms(text)
            with _CALL_LOCK:
                result = self._en.normalize(protected)
            if has_terms:
                result = re.sub(r"\s*<H>\s*", "-", result)
        except Exception:  # upstream falls back to the un-normalised text
            warnings.warn(f"English normaliser failed on {text!r}:\n{traceback.format_exc()}", RuntimeWarning, stacklevel=3)
            result = text
        return _PUNCTUATION_RE.sub(lambda m: PUNCTUATION_MAP[m.group()], result)

    def apply_glossary(self, text: str, lang: str, glossary: dict | None = None) -> str:
        """Replace each term (case-insensitively, longest first) by its `lang` reading; a term
        without one stays. glossary: these terms instead of the normalizer's own."""
        glossary = self.glossary if glossary is None else glossary
        for term in sorted(glossary, key=len, reverse=True):
            value = glossary[term]
            reading = value.get(lang) if isinstance(value, dict) else value
            if not reading:
                continue  # no reading for this language: the text stays as written
            # A function replacement keeps backslashes in readings literal.
            text = re.sub(re.escape(term), lambda _m, r=reading: r, text, flags=re.IGNORECASE)
        return text


def _protect_tech_terms(text: str) -> tuple[str, bool]:
    """GPT-5-nano -> GPT<H>5<H>nano, so the normaliser reads the digits but not a minus sign."""
    terms = sorted(set(TECH_TERM_PATTERN.findall(text)), key=len, reverse=True)
    for term in terms:
        text = text.replace(term, term.replace("-", HYPHEN_PLACEHOLDER))
    return text, bool(terms)


def _protect(text: str, pattern: re.Pattern, tag: str) -> tuple[str, list[str]]:
    """Replace every distinct match by <tag_a>, <tag_b>, ... (upstream's placeholders).

    Upstream iterates a `set`, so its order depends on the hash seed; we go longest first, which is
    the one order where a match that contains another is never broken up.
    """
    found = ["".join(m) if isinstance(m, tuple) else m for m in pattern.findall(text)]
    found = sorted(set(found), key=lambda s: (-len(s), s))
    for i, s in enumerate(found):
        text = text.replace(s, f"<{tag}_{chr(ord('a') + i)}>")
    return text, found


def _restore(text: str, originals: list[str] | dict[str, str], tag: str) -> str:
    items = originals.items() if isinstance(originals, dict) else ((s, s) for s in originals)
    for i, (_, restored) in enumerate(items):
        text = text.replace(f"<{tag}_{chr(ord('a') + i)}>", restored)
    return text
