"""Runner for kind `text_frontend25`: the 2.5 text front end, every stage compared exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path

from index_tts.text.frontend25 import FrontEnd25
from index_tts.text.normalize import TextNormalizer
from index_tts.text.tokenizer25 import RANK_FILE, Tokenizer25
from tests.conformance.harness import check, runner

STAGES = ("after_char_map", "normalizer", "normalized", "cased", "annotated", "ja_segmented", "final_text")


@runner("text_frontend25")
def run_text_frontend(case: dict) -> None:
    cfg = case["config"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / RANK_FILE
        path.write_bytes(case["weights"][RANK_FILE].numpy().tobytes())
        tokenizer = Tokenizer25(path)
    assert tokenizer.vocab_size == cfg["n_vocab"] and tokenizer.n_ranks == cfg["n_ranks"]
    for token, i in cfg["special_ids"].items():
        check(case, f"special_ids[{token}]", tokenizer.specials[token], i)
    normalizer = TextNormalizer(enable_glossary=cfg["enable_glossary"], glossary=cfg["glossary"])
    front = FrontEnd25(tokenizer, normalizer, cfg["text_pos_embedding_num_embeddings"])

    inp = case["inputs"]
    for i, (text, lang) in enumerate(zip(inp["texts"], inp["langs"])):
        want = case["outputs"]["per_text"][i]
        where = lambda name: f"per_text[{i}].{name}"  # noqa: E731
        results = {m: front.run(text, lang, m) for m in cfg["max_text_tokens_per_segment"]}
        r = next(iter(results.values()))
        for name in STAGES:
            check(case, where(name), getattr(r, name), want[name])
        check(case, where("lang_prefix"), r.lang_prefix, want["lang_prefix"])
        check(case, where("lang_id"), r.lang_id, want["lang_id"])
        check(case, where("prefix_ids"), tokenizer.encode(r.lang_prefix), want["prefix_ids"])
        check(case, where("pieces"), tokenizer.pieces(r.lang_prefix + r.final_text), want["pieces"])
        for m, res in results.items():
            check(case, where(f"segments_{m}"), res.segments, want[f"segments_{m}"])
            check(case, where(f"segment_ids_{m}"), res.segment_ids, want[f"segment_ids_{m}"])
            gpt_ids = [[t for t in ids if t not in (0, 1)] for ids in res.segment_ids]
            check(case, where(f"gpt_ids_{m}"), gpt_ids, want[f"gpt_ids_{m}"])
