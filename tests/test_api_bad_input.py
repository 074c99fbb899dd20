"""Bad input over HTTP is a 4xx naming the field, never a 5xx: direct regressions for the bodies
that once gave a server error, the other body-level classes (400), and the emotion preset body."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}


def post(server, content: bytes | str):
    with server.client(timeout=120) as http:
        return http.post("/v1/audio/speech", content=content, headers=JSON)


def test_text_whose_first_speakable_character_follows_a_nul(studio_server):
    """Once a 500 from the quick voice."""
    r = post(studio_server, json.dumps({"input": "\x00Hello there.", "voice": "alice", "response_format": "wav"}))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == "text" and "control character" in r.json()["error"]["message"]


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_a_deeply_nested_body(studio_server, depth):
    """Once a 500 (or a reset connection)."""
    for body in ("[" * depth + "]" * depth, '{"input": ' + "[" * depth + "]" * depth + ', "voice": "alice"}'):
        r = post(studio_server, body)
        assert r.status_code == 400, r.text[:300]
        assert r.json()["error"]["param"] == "body" and "nested" in r.json()["error"]["message"]
    assert studio_server.alive()


@pytest.mark.parametrize("field,body", [
    ("input", '{"input": "\\ud800 hello", "voice": "alice"}'),
    ("voice", '{"input": "hello", "voice": "al\\udfffice"}'),
    ("emotion.text", '{"input": "hello", "voice": "alice", "emotion": {"mode": "text", "text": "\\ud83d"}}'),
])
def test_a_lone_surrogate_escape(studio_server, field, body):
    """Once a 500."""
    r = post(studio_server, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field and "surrogate" in r.json()["error"]["message"]


def test_a_key_given_twice_is_named(studio_server):
    r = post(studio_server, '{"input": "hello", "voice": "alice", "input": "again"}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    assert "twice" in r.json()["error"]["message"]


def test_a_body_that_is_not_utf8(studio_server):
    r = post(studio_server, b'{"input": "caf\xe9", "voice": "alice"}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"
    assert "UTF-8" in r.json()["error"]["message"]


@pytest.mark.parametrize("body,field", [
    ({"input": "hello", "voice": "alice", "speed": 10**400}, "speed"),
    ({"input": "hello", "voice": "alice", "generation": {"top_k": 10**400}}, "generation.top_k"),
    ({"input": "hello", "voice": "alice", "emotion": {"weight": 10**400}}, "emotion.weight"),
    ({"input": "hello", "voice": "a\x00lice"}, "voice"),
    ({"input": "hello", "voice": "v" * 500}, "voice"),
    ({"input": "hello", "voice": "alice", "instructions": "calm\x07"}, "emotion.text"),
])
def test_huge_numbers_control_characters_and_overlong_names(studio_server, body, field):
    r = post(studio_server, json.dumps(body))
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["param"] == field


def test_voice_names_with_control_characters(studio_server):
    with studio_server.client() as http:
        for name in ("a%00b", "a%1Bb", "%E2%80%8Bx"):
            r = http.delete(f"/v1/voices/{name}")
            assert r.status_code == 422 and r.json()["error"]["param"] == "name", (name, r.text)
        assert http.get("/v1/voices/nobody").status_code == 404


def test_an_emotion_preset_in_the_body(studio_server):
    ok = post(studio_server, json.dumps({"input": "Hello there.", "voice": "alice", "response_format": "wav",
                                         "emotion": {"preset": "angry", "weight": 0.8}}))
    assert ok.status_code == 200, ok.text
    unknown = post(studio_server, json.dumps({"input": "hello", "voice": "alice", "emotion": {"preset": "furious"}}))
    assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "emotion.preset"
    assert "angry" in unknown.json()["error"]["message"]       # the known presets are listed
    mixed = post(studio_server, json.dumps({"input": "hello", "voice": "alice",
                                            "emotion": {"preset": "calm", "mode": "text"}}))
    assert mixed.status_code == 422 and mixed.json()["error"]["param"] == "emotion.mode"
