"""Text -> BPE pieces -> ids: upstream IndexTTS2's `TextTokenizer` (v2.0).

The official `bpe.model` was trained on normalised text with a space around every CJK character
and the rest upper-cased, so `tokenize` prepares text the same way before SentencePiece sees it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from sentencepiece import SentencePieceProcessor

from index_tts.text.normalize import TextNormalizer
from index_tts.text.segment import split_segments

# CJK ranges as upstream (taken there from NLTK): Hangul Jamo, CJK radicals .. Yi, Hangul
# syllables, compatibility ideographs and forms, half/full-width forms, and the supplementary
# ideograph planes.
_CJK_SPLIT = re.compile(
    r"([\u1100-\u11ff\u2e80-\ua4cf\ua840-\uD7AF\uF900-\uFAFF\uFE30-\uFE4F\uFF65-\uFFDC\U00020000-\U0002FFFF])"
)


def tokenize_by_CJK_char(line: str) -> str:
    """"你好world 的" -> "你 好 WORLD 的": CJK chars spaced out, the rest upper-cased, single spaces."""
    parts = _CJK_SPLIT.split(line.strip())
    return " ".join(p.strip().upper() for p in parts if p.strip())


@dataclass(frozen=True)
class Encoded:
    """What `TextTokenizer.encode` found out about one text."""

    pieces: list[str]
    ids: list[int]
    n_unk: int  # pieces the vocabulary does not know; they become `unk_id`


class TextTokenizer:
    """bpe_model_path: a SentencePiece model. normalizer: a TextNormalizer, or None to skip it."""

    def __init__(self, bpe_model_path: str | Path, normalizer: TextNormalizer | None = None):
        path = Path(bpe_model_path)
        if not path.is_file():
            raise FileNotFoundError(f"BPE model not found: {path}")
        self.normalizer = normalizer
        self.sp = SentencePieceProcessor(model_file=str(path))

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize()

    @property
    def unk_id(self) -> int:
        return self.sp.unk_id()

    def prepare(self, text: str, glossary: dict | None = None) -> str | None:
        """The string SentencePiece encodes; None when upstream skips normalisation (one char).

        glossary: custom pronunciations for this call, handed to the normalizer.
        """
        if len(text.strip()) == 1:
            return None
        if self.normalizer is not None:
            text = self.normalizer.normalize(text, glossary=glossary)
        return tokenize_by_CJK_char(text)

    def tokenize(self, text: str, glossary: dict | None = None) -> list[str]:
        """text -> BPE pieces. A single (stripped) character is encoded raw, as upstream does."""
        if not text:
            return []
        prepared = self.prepare(text, glossary)
        return self.sp.Encode(text if prepared is None else prepared, out_type=str)

    def convert_tokens_to_ids(self, pieces: list[str]) -> list[int]:
        return [self.sp.PieceToId(p) for p in pieces]

    def encode(self, text: str, glossary: dict | None = None) -> Encoded:
        pieces = self.tokenize(text, glossary)
        ids = self.convert_tokens_to_ids(pieces)
        n_unk = sum(1 for i in ids if i == self.unk_id)
        if n_unk:
            warnings.warn(f"{n_unk} piece(s) of {text!r} are not in the BPE vocabulary", RuntimeWarning, stacklevel=2)
        return Encoded(pieces, ids, n_unk)

    def split_segments(self, pieces: list[str], max_tokens: int = 120, quick_streaming_tokens: int = 0) -> list[list[str]]:
        return split_segments(pieces, max_tokens, quick_streaming_tokens)
