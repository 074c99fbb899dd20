"""IndexTTS-2.5's text front end (spec-2.5 §2.5): raw text + language -> token-id segments.

Stages, in upstream's order (each kept in `FrontEnd25Result`, named as the fixtures name them):
    after_char_map  the v2 punctuation map on the RAW text (so "8:00" -> "8,00" before numbers are read)
    normalized      zh/zhen/en: v2's TextNormalizer (zh or en grammar chosen by the text), with
                    `<word|PRON>` kept verbatim; ja, es: pass-through; other languages: untouched
    cased           lower() for ja/zh/zhen/en, upper() for es
    annotated       `<word|PRON>` -> PRON between special tokens (kana readings replace the word)
    ja_segmented    ja only: fugashi/unidic-lite surface forms joined by spaces
    final_text      every `<|x|>` with its inside upper-cased
then split into segments of at most `budget` tokens (language prefix included), each encoded as
`<|lang|> ` + segment, with one id 1 appended (the GPT drops every 0 and 1 again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from index_tts.text.normalize import _PUNCTUATION_RE, PUNCTUATION_MAP
from index_tts.text.tokenizer25 import Tokenizer25, lang_to_token

NORMALIZED_LANGS = ("zh", "zhen", "en")
PASS_THROUGH_LANGS = ("ja", "es")        # upstream's nemo_tn: no ja grammar, no NeMo installed for es
LOWER_CASE_LANGS = ("ja", "zh", "zhen", "en")
LANGUAGE_CHOICES = ("zh", "en", "ja", "es", "ar", "zhen")

PRON_RE = re.compile(r"<([^|>\n]+)\|([^>\n]+)>")
SPECIAL_RE = re.compile(r"<\|(.*?)\|>")
PROTECTED_RE = re.compile(r"<\|SPECIAL_TOKEN_\d+\|>.*?<\|SPECIAL_TOKEN_\d+\|>")
DELIMITERS = set("，。！？、；：,.!?;:\n")
PLACEHOLDER = "PRONPLACEHOLDER"
KANA_RE = re.compile(r"[\u3040-\u309f]+|[\u30a0-\u30ff]+")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class FrontEnd25Result:
    lang_prefix: str
    lang_id: int
    after_char_map: str = ""
    normalizer: str = "none"
    normalized: str = ""
    cased: str = ""
    annotated: str = ""
    ja_segmented: str = ""
    final_text: str = ""
    segments: list[str] = field(default_factory=list)
    segment_ids: list[list[int]] = field(default_factory=list)   # each ends with the appended 1


def _tag(i: int) -> str:
    """a, b, ..., z, aa, ab, ... (upstream's placeholder names)."""
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(ord("a") + r) + letters
    return letters


def _pronunciation(match: re.Match) -> str:
    word, pron = match.group(1), match.group(2).upper()
    if KANA_RE.fullmatch(pron):
        return f" {pron} "  # a kana reading replaces the word
    marker = "<|SPECIAL_TOKEN_2|>" if CJK_RE.search(word) else "<|SPECIAL_TOKEN_1|>"
    return f"{marker}{pron}{marker}"


class FrontEnd25:
    """normalizer: a v2 `TextNormalizer` (loaded lazily on first zh/en text); tokenizer: Tokenizer25."""

    def __init__(self, tokenizer: Tokenizer25, normalizer=None, text_positions: int = 602):
        self.tokenizer = tokenizer
        self.normalizer = normalizer
        self.text_positions = text_positions
        self._tagger = None

    # -- stages ------------------------------------------------------------------------------

    def _normalize(self, text: str, lang: str, glossary: dict | None) -> tuple[str, str]:
        if lang in NORMALIZED_LANGS:
            from index_tts.text.normalize import use_chinese

            annotations: list[str] = []

            def protect(m: re.Match) -> str:
                annotations.append(m.group())
                return f"{PLACEHOLDER}{_tag(len(annotations) - 1)}{PLACEHOLDER}"

            protected = PRON_RE.sub(protect, text)
            which = "zh" if use_chinese(protected) else "en"
            out = self.normalizer.normalize(protected, glossary)
            for i, original in reversed(list(enumerate(annotations))):  # "aa" before "a"
                out = out.replace(f"{PLACEHOLDER}{_tag(i)}{PLACEHOLDER}", original)
            return out, f"TextNormalizer({which})"
        if lang in PASS_THROUGH_LANGS:
            return text, "nemo_tn (pass-through: ja has no grammar; es needs nemo_text_processing, not installed)"
        return text, "none"

    def _segment_japanese(self, text: str) -> str:
        if self._tagger is None:
            import fugashi  # with unidic-lite, as upstream's JapaneseG2PProcessor

            self._tagger = fugashi.Tagger()
        parts = re.split(r"(\s+)", text)
        return "".join(p if not p or p.isspace() else " ".join(w.surface for w in self._tagger(p)) for p in parts)

    def run(self, text: str, lang: str, max_tokens: int = 120, glossary: dict | None = None,
            normalize: bool = True) -> FrontEnd25Result:
        code = lang.lower()
        r = FrontEnd25Result(lang_prefix=f"<|{code}|> ", lang_id=lang_to_token(code))
        r.after_char_map = _PUNCTUATION_RE.sub(lambda m: PUNCTUATION_MAP[m.group()], text)
        if normalize:
            r.normalized, r.normalizer = self._normalize(r.after_char_map, code, glossary)
        else:
            r.normalized = r.after_char_map
        r.cased = r.normalized.lower() if code in LOWER_CASE_LANGS else r.normalized.upper() if code == "es" else r.normalized
        r.annotated = PRON_RE.sub(_pronunciation, r.cased)
        r.ja_segmented = self._segment_japanese(r.annotated) if code == "ja" else r.annotated
        r.final_text = SPECIAL_RE.sub(lambda m: f"<|{m.group(1).upper()}|>", r.ja_segmented)
        r.segments = self.split(r.final_text, max_tokens, r.lang_prefix)
        r.segment_ids = [self.tokenizer.encode(r.lang_prefix + s) + [1] for s in r.segments]
        return r

    # -- segmentation ------------------------------------------------------------------------

    def split(self, text: str, max_tokens: int, prefix: str) -> list[str]:
        """Upstream `split_text_by_tokens`: pieces of at most `budget` tokens, cut after
        punctuation, annotated spans kept whole, over-long pieces cut character by character."""
        count = self.tokenizer.count
        budget = max(1, min(max_tokens, self.text_positions - 2) - count(prefix))
        if count(text) <= budget:
            return [text]
        chunks: list[str] = []
        pos = 0
        for m in PROTECTED_RE.finditer(text):
            chunks += self._plain_chunks(text[pos:m.start()], budget)
            chunks.append(m.group())
            pos = m.end()
        chunks += self._plain_chunks(text[pos:], budget)

        merged: list[str] = []
        current = ""
        for chunk in chunks:
            if current and count(current + chunk) > budget:
                merged.append(current)
                current = chunk
            else:
                current += chunk
        if current:
            merged.append(current)
        return merged

    def _plain_chunks(self, text: str, budget: int) -> list[str]:
        parts, current = [], ""
        for ch in text:
            current += ch
            if ch in DELIMITERS:
                parts.append(current)
                current = ""
        if current:
            parts.append(current)
        out: list[str] = []
        for part in parts:
            if self.tokenizer.count(part) <= budget:
                out.append(part)
                continue
            piece = ""
            for ch in part:
                if piece and self.tokenizer.count(piece + ch) > budget:
                    out.append(piece)
                    piece = ch
                else:
                    piece += ch
            if piece:
                out.append(piece)
        return out
