"""Text front end without the FST grammars: segmentation, CJK spacing, the pure normaliser rules,
and the parsing of the Qwen emotion model's answers."""

import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from index_tts.emotion import EMOTIONS
from index_tts.text import split_segments, tokenize_by_CJK_char, use_chinese
from index_tts.text.emotion_llm import THINK_END_ID, QwenEmotion, ids_after_think, parse_emotion_output
from index_tts.text.normalize import CACHE_ENV, PUNCTUATION_MAP, _PUNCTUATION_RE, correct_pinyin, default_cache_dir

REPO = Path(__file__).resolve().parents[1]


def words(n, prefix="w"):
    return [f"▁{prefix}{i}" for i in range(n)]


# ---------------------------------------------------------------------------------------------
# split_segments


def test_empty_input_gives_no_segments():
    assert split_segments([], 20) == []


def test_sentences_are_cut_then_merged_up_to_the_limit():
    a = ["▁A", "▁B", "▁C", "▁."]
    b = ["▁D", "▁E", "▁F", "?"]
    assert split_segments(a + b, max_tokens=4) == [a, b]
    assert split_segments(a + b, max_tokens=8) == [a + b]


def test_sentence_end_needs_more_than_two_tokens():
    # "▁A ▁." is too short to end a sentence: it runs on until the limit forces a hard cut.
    pieces = ["▁A", "▁.", "▁B", "▁C", "▁D", "▁."]
    with pytest.warns(RuntimeWarning):
        assert split_segments(pieces, max_tokens=3) == [["▁A", "▁.", "▁B"], ["▁C", "▁D", "▁."]]
    three = ["▁A", "▁B", "▁.", "▁C", "▁D", "▁E", "▁."]
    assert split_segments(three, max_tokens=4) == [three[:3], three[3:]]


def test_quote_after_sentence_end_is_attached_and_repeated_like_upstream():
    # Upstream appends the quote to the finished sentence, but its `i += 1` inside a `for` loop
    # does not skip it, so the quote also opens the next segment.
    pieces = ["▁A", "▁B", "▁C", "▁.", "▁'", "▁D", "▁E", "▁F"]
    assert split_segments(pieces, max_tokens=5) == [["▁A", "▁B", "▁C", "▁.", "▁'"], ["▁'", "▁D", "▁E", "▁F"]]


def test_every_comma_cuts_and_merging_rejoins():
    pieces = words(10, "a") + ["▁,"] + words(14, "b")
    assert split_segments(pieces, max_tokens=20) == [pieces[:11], pieces[11:]]
    assert split_segments(pieces, max_tokens=120) == [pieces]


def test_bare_hyphen_cuts_but_spaced_hyphen_does_not():
    pieces = words(8, "a") + ["-"] + words(8, "b")
    assert split_segments(pieces, max_tokens=10) == [pieces[:9], pieces[9:]]
    spaced = words(8, "a") + ["▁-"] + words(8, "b")
    with pytest.warns(RuntimeWarning):
        assert split_segments(spaced, max_tokens=10) == [spaced[:10], spaced[10:]]


def test_long_piece_without_marks_is_hard_cut_with_a_warning():
    pieces = words(45)
    with pytest.warns(RuntimeWarning, match="exceeds 20"):
        segments = split_segments(pieces, max_tokens=20)
    # The cut happens when the 21st token arrives, as 20 + 1; the walk then starts afresh.
    assert segments == [pieces[:20], pieces[20:21], pieces[21:41], pieces[41:]]


def test_quick_streaming_keeps_the_first_segments_short():
    s = [["▁A", "▁B", "▁C", "▁."], ["▁D", "▁E", "▁F", "▁."], ["▁G", "▁H", "▁I", "▁."]]
    flat = [p for seg in s for p in seg]
    assert split_segments(flat, max_tokens=10) == [s[0] + s[1], s[2]]
    # Until more than 20 tokens have been walked, only halves of the limit (<= 5) are merged.
    assert split_segments(flat, max_tokens=10, quick_streaming_tokens=20) == s


@pytest.mark.parametrize("seed", range(20))
def test_segments_respect_the_limit_and_keep_every_token(seed):
    rng = random.Random(seed)
    vocab = ["▁x", "▁y", "z", "▁,", ",", "-", "▁.", ".", "?", "▁?", "▁..."]
    pieces = [rng.choice(vocab) for _ in range(rng.randint(1, 300))]
    limit = rng.randint(3, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        segments = split_segments(pieces, max_tokens=limit)
    assert all(0 < len(seg) <= limit for seg in segments)
    assert [p for seg in segments for p in seg] == pieces


def test_invalid_limit_is_rejected():
    with pytest.raises(ValueError):
        split_segments(["▁a"], max_tokens=0)


# ---------------------------------------------------------------------------------------------
# Pure normaliser and tokenizer rules


def test_cjk_chars_are_spaced_and_the_rest_upper_cased():
    assert tokenize_by_CJK_char("  你好world 的 test,ok  ") == "你 好 WORLD 的 TEST,OK"
    assert tokenize_by_CJK_char("") == ""


def test_path_decision():
    assert use_chinese("今天 good")
    assert use_chinese("12345")  # no Latin letters
    assert use_chinese("abc123@example.com")
    assert use_chinese("zhong4 wen2")  # pinyin with tone
    assert not use_chinese("Hello world")
    assert not use_chinese("beta1 voice2")


def test_pinyin_correction():
    assert correct_pinyin("xuan4") == "XVAN4"
    assert correct_pinyin("jun1") == "JVN1"
    assert correct_pinyin("que4") == "QVE4"
    assert correct_pinyin("zhong4") == "zhong4"  # not j/q/x: left as written


def test_punctuation_alternation_order_is_upstreams():
    sub = lambda s: _PUNCTUATION_RE.sub(lambda m: PUNCTUATION_MAP[m.group()], s)  # noqa: E731
    assert sub("“你好”（a）《b》") == "'你好''a''b'"
    assert sub("wait...") == "wait…"
    assert sub("a,,,b") == "a…b"
    # "，" comes before "，，，" in upstream's map, so three full-width commas are three commas.
    assert sub("a，，，b") == "a,,,b"


def test_importing_the_text_package_loads_no_grammar_or_model():
    code = (
        "import sys, index_tts.text, index_tts.text.emotion_llm; "
        "print(sorted(m for m in ('pynini', 'tn', 'transformers', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_fst_cache_dir_is_outside_the_repo_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert REPO not in default_cache_dir().resolve().parents
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "fst"))
    assert default_cache_dir() == tmp_path / "fst"


# ---------------------------------------------------------------------------------------------
# parse_emotion_output


def vec(**kw):
    return tuple(float(kw.get(name, 0.0)) for name in EMOTIONS)


def test_valid_json():
    raw = '{"高兴": 0.1, "愤怒": 0.2, "悲伤": 0.3, "恐惧": 0.4, "反感": 0.5, "低落": 0.6, "惊讶": 0.7, "自然": 0.8}'
    assert parse_emotion_output(raw, "whatever") == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def test_missing_keys_are_zero():
    assert parse_emotion_output('{"惊讶": 0.9}', "x") == vec(surprised=0.9)


def test_regex_fallback_on_broken_json():
    raw = '{"高兴": 0.5, "愤怒": 0.25, 惊讶: 1'
    assert parse_emotion_output(raw, "x") == vec(happy=0.5, angry=0.25, surprised=1.0)


def test_label_style_outputs():
    assert parse_emotion_output("angry", "x") == vec(angry=1.0)
    assert parse_emotion_output('"恐惧"', "x") == vec(afraid=1.0)
    assert parse_emotion_output('{"emotion": "愤怒"}', "x") == vec(angry=1.0)
    assert parse_emotion_output('{"label": "Surprised"}', "x") == vec(surprised=1.0)


def test_melancholic_swap():
    raw = '{"悲伤": 0.9, "低落": 0.1}'
    assert parse_emotion_output(raw, "I feel so GLOOMY today") == vec(sad=0.1, melancholic=0.9)
    assert parse_emotion_output(raw, "心情低落") == vec(sad=0.1, melancholic=0.9)
    assert parse_emotion_output(raw, "I feel sad") == vec(sad=0.9, melancholic=0.1)


def test_values_are_clamped():
    assert parse_emotion_output('{"愤怒": 2.5, "高兴": -0.3, "悲伤": 1}', "x") == vec(angry=1.2, sad=1.0)


def test_all_zero_becomes_calm():
    assert parse_emotion_output('{"高兴": 0, "愤怒": -1}', "x") == vec(calm=1.0)
    assert parse_emotion_output("{}", "x") == vec(calm=1.0)
    assert parse_emotion_output("no idea", "x") == vec(calm=1.0)


def test_non_numeric_values_raise():
    with pytest.raises(ValueError, match="高兴"):
        parse_emotion_output('{"高兴": "lots"}', "x")
    with pytest.raises(ValueError, match="愤怒"):
        parse_emotion_output('{"愤怒": 1.2.3', "x")
    with pytest.raises(ValueError):
        parse_emotion_output("[0.1, 0.2]", "x")


def test_ids_after_think():
    assert ids_after_think([1, THINK_END_ID, 5, 6]) == [5, 6]
    assert ids_after_think([THINK_END_ID, 2, THINK_END_ID, 7]) == [7]
    assert ids_after_think([3, 4]) == [3, 4]


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        QwenEmotion(tmp_path / "qwen0.6bemo4-merge")


# ---------------------------------------------------------------------------------------------
# QwenEmotion end to end on a tiny random Qwen3 saved to disk (no download, a few seconds)


def save_tiny_qwen(directory):
    """A 1-layer Qwen3 whose logits are all zero, so greedy decoding emits id 0 (EOS) at once."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    chars = "abcdefghijklmnopqrstuvwxyz{}\":,.0123456789 \n高兴愤怒悲伤"
    vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tokenizer.save_pretrained(directory)
    config = Qwen3Config(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, eos_token_id=0, pad_token_id=0, bos_token_id=1, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    model.save_pretrained(directory)


def test_qwen_emotion_runs_a_local_model(tmp_path):
    save_tiny_qwen(tmp_path)
    qwen = QwenEmotion(tmp_path, device="cpu")
    assert qwen.generate_raw("今天好高兴") == ""
    # An empty answer names no emotion, so the rules fall back to calm.
    assert qwen.inference("今天好高兴") == vec(calm=1.0)
