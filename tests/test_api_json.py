"""The HTTP layer's strict JSON parsing, without a server."""

from __future__ import annotations

import pytest

from index_tts.api.errors import MAX_JSON_DEPTH, BadRequest, parse_json


def refused(raw: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_json(raw)
    return caught.value


def test_valid_bodies_parse_as_json_does():
    assert parse_json(b'{"input": "[not a bracket {", "n": [1, 2.5, NaN]}')["input"] == "[not a bracket {"
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(nested) is not None
    assert parse_json('{"t": "\\ud83d\\ude00 ok"}'.encode()) == {"t": "\U0001F600 ok"}   # a proper pair is fine


@pytest.mark.parametrize("raw,status,field,words", [
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), 400, "body", "nested"),
    (b"[" * 200_000, 400, "body", "nested"),
    (b'{"a": 1, "b": {"c": 1, "c": 2}}', 400, "c", "twice"),
    (b'{"input": "\\ud800"}', 400, "input", "surrogate"),
    (b'{"e": {"text": ["ok", "\\udfff"]}}', 400, "e.text.1", "surrogate"),
    (b'{"\\ud800": 1}', 400, "\ud800", "surrogate"),
    (b'{"input": "caf\xe9"}', 400, "body", "UTF-8"),
    (b'{"n": ' + b"9" * 5000 + b"}", 400, "body", "usable"),
    (b"{not json", 422, "body", "not valid JSON"),
])
def test_unusable_bodies_are_named(raw, status, field, words):
    error = refused(raw)
    assert (error.status, error.field) == (status, field) and words in str(error)
