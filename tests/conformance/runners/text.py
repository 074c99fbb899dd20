"""Runner for `text_frontend`: normaliser, tokenizer and segmenter against upstream's WeTextProcessing branch.

Only the `WeTextProcessing` outputs are checked: that is the Linux branch, and pynini (which it
needs) cannot share a process with kaldifst (which the `wetext` branch needs).
"""

import tempfile
from pathlib import Path

from index_tts.text import TextNormalizer, TextTokenizer, split_segments, tokenize_by_CJK_char, use_chinese
from tests.conformance.harness import check, runner, write_model_files

BACKEND = "WeTextProcessing"


@runner("text_frontend")
def run_text_frontend(case: dict) -> None:
    config = case["config"]
    limits = config["max_text_tokens_per_segment"]
    limits = limits if isinstance(limits, (list, tuple)) else [limits]
    quick = config.get("quick_streaming_tokens", 0)
    normalizer = TextNormalizer(enable_glossary=config.get("enable_glossary", False), glossary=config.get("glossary") or {})
    with tempfile.TemporaryDirectory() as tmp:
        write_model_files(case["weights"], Path(tmp))
        tokenizer = TextTokenizer(Path(tmp) / "bpe.model", normalizer)

    texts = case["inputs"]["texts"]
    expected_all = case["outputs"][BACKEND]
    assert len(expected_all) == len(texts), "one expected record per sentence"
    failures = []
    for i, (text, expected) in enumerate(zip(texts, expected_all)):
        # The fixture records no normaliser path for "" and no CJK pass where `tokenize` skips
        # normalisation (empty or single-character text).
        normalized = normalizer.normalize(text) if text else ""
        skipped = not text or tokenizer.prepare(text) is None
        encoded = tokenizer.encode(text)
        actual = {
            "use_chinese_normalizer": bool(text) and use_chinese(text),
            "normalized": normalized,
            "normalized_used": None if skipped else normalized,
            "cjk_tokenized": None if skipped else tokenize_by_CJK_char(normalized),
            "pieces": encoded.pieces,
            "ids": encoded.ids,
            "n_unk": encoded.n_unk,
        }
        for n in limits:
            segments = split_segments(encoded.pieces, n, quick)
            actual[f"segments_{n}"] = segments
            actual[f"segment_ids_{n}"] = [tokenizer.convert_tokens_to_ids(s) for s in segments]
        for name, value in expected.items():
            if name not in actual:
                failures.append(f"[{i}] {name}: no such output computed")
                continue
            if value is None:  # `check` reads None as "look the output up", so compare here
                if actual[name] is not None:
                    failures.append(f"[{i}] {text!r}: {name} {actual[name]!r} != None")
                continue
            try:
                check(case, f"{BACKEND}[{i}].{name}", actual[name], expected=value)
            except AssertionError as err:
                failures.append(f"[{i}] {text!r}: {err}")
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures)
