"""The inline tag parser: valid and malformed tags, English and Chinese."""

from __future__ import annotations

import pytest

from index_tts.emotion import EMOTIONS
from index_tts.text.tags import EmotionTag, Pause, Speech, TagError, parse, strip_tags


def labels(items):
    return [(i.text, i.emotion.label if i.emotion else None) if isinstance(i, Speech) else ("pause", i.ms) for i in items]


def test_text_without_tags_is_one_plain_part():
    assert parse("Just words. Nothing else!") == [Speech("Just words. Nothing else!", None)]


def test_english_tags_apply_from_their_sentence_until_the_next_tag():
    items = parse("It began quietly. [happy] Then we won! Everyone cheered. [sad:0.6] But then [pause 500ms] it rained.")
    assert labels(items) == [
        ("It began quietly.", None),
        ("Then we won! Everyone cheered.", "happy"),
        ("But then", "sad"),
        ("pause", 500),
        ("it rained.", "sad"),
    ]
    assert items[2].emotion.weight == 0.6
    assert items[2].emotion.vector[EMOTIONS.index("sad")] > 0 and sum(items[2].emotion.vector) == items[2].emotion.vector[2]


def test_a_tag_in_the_middle_of_a_sentence_reaches_back_to_its_start():
    assert labels(parse("First one. Second [angry] one, loud.")) == [("First one.", None), ("Second one, loud.", "angry")]


def test_chinese_tags_and_full_width_brackets():
    items = parse("你好。今天［开心］真好！[停顿 1.5秒]我们走吧。[悲伤：0.5]再见。[默认]结束。")
    assert labels(items) == [("你好。", None), ("今天真好！", "happy"), ("pause", 1500), ("我们走吧。", "happy"),
                             ("再见。", "sad"), ("结束。", None)]
    assert items[4].emotion.weight == 0.5


def test_vector_and_pause_forms():
    (speech,) = parse("[vector 0,0,0.7,0,0,0,0,0.2] x")
    assert speech.emotion == EmotionTag("vector", (0, 0, 0.7, 0, 0, 0, 0, 0.2), 0.8)
    (speech,) = parse("[向量 0，0，0.7，0，0，0，0，0.2：0.5] x")
    assert speech.emotion.weight == 0.5 and speech.emotion.vector[2] == 0.7
    assert [i.ms for i in parse("[pause 0.25s][pause 300][PAUSE 40ms][停顿 200毫秒]") if isinstance(i, Pause)] == [250, 300, 40, 200]


def test_escape_gives_a_literal_bracket_and_corner_brackets_are_text():
    assert parse("see [[1] and ［［注］ and 【第一章】") == [Speech("see [1] and ［注］ and 【第一章】", None)]
    assert strip_tags("[happy]Hi [[x]. [pause 1s] Bye") == "Hi [x]. Bye"


@pytest.mark.parametrize("text, column, problem", [
    ("Hi [hapy] there", 4, "unknown tag 'hapy'"),
    ("Hi [happy there", 4, "never closed"),
    ("[happy\n] x", 1, "never closed"),
    ("ok [sad [happy] x", 4, "never closed"),
    ("[sad:1.5] x", 1, "between 0 and 1"),
    ("[vector 1,2,3] x", 1, "needs 8 numbers"),
    ("[vector 0,0,0,0,0,0,0,0] x", 1, "at least one value"),
    ("[vector 0,0,a,0,0,0,0,0] x", 1, "must be numbers"),
    ("x [pause] y", 3, "needs a length"),
    ("x [pause 99s] y", 3, "at most 10000 ms"),
    ("x [] y", 3, "empty tag"),
    ("你好[生病]了", 3, "unknown tag '生病'"),
])
def test_malformed_tags_are_pointed_at(text, column, problem):
    with pytest.raises(TagError) as caught:
        parse(text)
    error = caught.value
    assert problem in str(error)
    assert error.column == column and error.line == 1
    assert f"column {column}" in str(error) and error.snippet.startswith(text[column - 1])


def test_error_positions_count_lines():
    with pytest.raises(TagError) as caught:
        parse("line one\nline two [oops]\n")
    assert (caught.value.line, caught.value.column) == (2, 10)
    assert caught.value.snippet == "[oops]"
