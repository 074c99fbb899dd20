"""Text front end: normalise (zh/en), tokenise (BPE), split into segments; pure str -> ids.
Also text -> 8 emotion weights: `emotion_llm` (upstream's Qwen model) and `emotion_lexicon`
(keywords; the quick voice's and the fallback without the model).

Importing this package loads nothing; the FST normalisers are built on first use.
"""

from index_tts.text.normalize import TextNormalizer, use_chinese
from index_tts.text.segment import split_segments
from index_tts.text.tokenizer import Encoded, TextTokenizer, tokenize_by_CJK_char

__all__ = ["Encoded", "TextNormalizer", "TextTokenizer", "split_segments", "tokenize_by_CJK_char", "use_chinese"]
