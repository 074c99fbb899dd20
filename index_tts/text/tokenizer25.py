"""IndexTTS-2.5's text tokenizer (spec-2.5 §4.4): byte-level BPE over a tiktoken rank file
(`multilingual_zh_ja_yue_char_del.tiktoken`, one `base64(token bytes) rank` per line), GPT-2's
pre-tokenisation regex, and 1673 special tokens after the ranks in upstream's fixed order.

Text is always encoded with every special allowed: `<|zh|>` or `<|SPECIAL_TOKEN_1|>` typed in the
text becomes its id. Only the first 99 language codes have special tokens; the GPT's language row
comes from `lang_to_token`, which knows 106 codes (unknown -> "common").
"""

from __future__ import annotations

import base64
from pathlib import Path

RANK_FILE = "multilingual_zh_ja_yue_char_del.tiktoken"
PAT_STR = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
NUM_LANGUAGES = 99  # upstream's default, never overridden: languages with a special token

# Whisper's 99 codes in Whisper order, then upstream's seven extra; index = GPT language row.
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg "
    "lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so "
    "af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su "
    "yue minnan wuyu dialect zh/en en/zh common"
).split()
LANGUAGE_INDEX = {code: i for i, code in enumerate(LANGUAGES)}


def lang_to_token(lang: str) -> int:
    """The GPT's language row: the code's index, unknown codes (zhen, xx) -> `common` (105)."""
    return LANGUAGE_INDEX.get(lang.lower(), LANGUAGE_INDEX["common"])


def special_tokens() -> list[str]:
    """The 1673 special tokens, in id order after the ranks."""
    names = ["endoftext", "startoftranscript", *LANGUAGES[:NUM_LANGUAGES],
             "ASR", "AED", "SER", "Speech", "/Speech", "BGM", "/BGM", "Laughter", "/Laughter",
             "Applause", "/Applause", "HAPPY", "SAD", "ANGRY", "NEUTRAL",
             "translate", "transcribe", "startoflm", "startofprev", "nospeech", "notimestamps",
             *(f"SPECIAL_TOKEN_{i}" for i in range(1, 31)),
             "TTS/B", "TTS/O", "TTS/Q", "TTS/A", "TTS/CO", "TTS/CL", "TTS/H",
             *(f"TTS/SP{i:02d}" for i in range(1, 14)),
             *(f"{i * 0.02:.2f}" for i in range(1501))]
    return [f"<|{n}|>" for n in names]


def read_ranks(path: str | Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for n, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as e:
            raise ValueError(f"{path}: line {n} is not 'base64 rank': {line[:60]!r}") from e
    return ranks


class Tokenizer25:
    def __init__(self, rank_file: str | Path):
        import tiktoken

        ranks = read_ranks(rank_file)
        n = len(ranks)
        if sorted(ranks.values()) != list(range(n)):
            raise ValueError(f"{rank_file}: ranks must be 0..{n - 1} without gaps")
        specials = {tok: n + i for i, tok in enumerate(special_tokens())}
        self.encoding = tiktoken.Encoding(name=Path(rank_file).stem, pat_str=PAT_STR,
                                          mergeable_ranks=ranks, special_tokens=specials)
        self.n_ranks, self.specials = n, specials

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, allowed_special="all")

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def pieces(self, text: str) -> list[str]:
        """Each id's text (for reading; a piece may be part of a multi-byte character)."""
        return [self.encoding.decode_single_token_bytes(t).decode("utf-8", errors="backslashreplace") for t in self.encode(text)]
