"""The OpenAI-compatible API on a real server (loopback, quick voice): the official `openai`
client in every format, streaming, multipart uploads, the voice library, errors that name the
field, the offline /docs page, no CORS, and nothing served from outside the data folder."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile as sf

from tests.http_server import write_voice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(studio_server):
    return openai.OpenAI(base_url=f"{studio_server.url}/v1", api_key="not-needed-on-loopback", max_retries=0)


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768, 22050
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate


def newest_output(server, suffix: str) -> Path:
    return max((server.data_dir / "outputs").glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime_ns)


@pytest.mark.parametrize("fmt,media_type,rates", [
    ("mp3", "audio/mpeg", {22050}),
    ("wav", "audio/wav", {22050}),
    ("flac", "audio/flac", {22050}),
    ("opus", "audio/ogg", {24000, 48000}),  # libsndfile may decode Opus at its 48 kHz internal rate
    ("ogg", "audio/ogg", {22050}),
    ("pcm", "audio/pcm", {22050}),
])
def test_openai_client_gets_speech_in_every_format(client, fmt, media_type, rates):
    response = client.audio.speech.create(model="tts-1", voice="alice", input="The client asks, and the studio speaks.",
                                          response_format=fmt)
    assert response.response.headers["content-type"].startswith(media_type)
    audio, rate = decode(response.content, fmt)
    assert rate in rates
    assert 0.8 < len(audio) / rate < 10
    assert np.abs(audio).max() > 0.01


def test_speed_halves_the_duration(client):
    text = "Speed is a standard field, and here it is honoured."
    normal = decode(client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav",
                                               extra_body={"generation": {"seed": 4}}).content, "wav")[0]
    fast = decode(client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav", speed=2.0,
                                             extra_body={"generation": {"seed": 4}}).content, "wav")[0]
    assert len(fast) == pytest.approx(len(normal) / 2, rel=0.03)


def test_extension_fields_change_the_result(client):
    text = "Extension fields carry the emotion."
    body = {"generation": {"seed": 9}}
    calm = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav", extra_body=body)
    angry = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav",
                                       extra_body={**body, "emotion": {"mode": "vector", "vector": {"angry": 1.0}, "weight": 1.0}})
    assert calm.content != angry.content
    same = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav", extra_body=body)
    assert same.content == calm.content  # a fixed seed reproduces
    # OpenAI's `instructions` become the emotion description when no emotion is given.
    instructed = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav",
                                            instructions="furious, shouting in anger", extra_body=body)
    assert instructed.content != calm.content
    described = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav", extra_body={
        **body, "emotion": {"mode": "text", "text": "furious, shouting in anger", "weight": 0.65}})
    assert described.content == instructed.content
    # Audio mode: a saved voice as the emotion reference.
    referenced = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format="wav", extra_body={
        **body, "emotion": {"mode": "audio", "voice": "alice", "weight": 1.0}})
    assert decode(referenced.content, "wav")[0].size > 0


@pytest.mark.parametrize("fmt", ["pcm", "wav"])
def test_streaming_sends_the_same_samples_as_the_saved_file(studio_server, client, fmt):
    text = ("Streaming sends each segment as soon as it is ready, which matters for long texts. "
            "This second sentence arrives as a separate piece of audio, after a short pause.")
    received = b""
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alice", input=text, response_format=fmt,
            extra_body={"stream": True, "generation": {"max_text_tokens_per_segment": 20}}) as response:
        assert response.headers["x-audio-streaming"] == "progressive"
        assert response.headers.get("transfer-encoding") == "chunked"
        for chunk in response.iter_bytes():
            received += chunk
    saved = newest_output(studio_server, f".{fmt}").read_bytes()
    if fmt == "pcm":
        assert received == saved
    else:
        with wave.open(io.BytesIO(received)) as w:  # sizes say "unknown"; samples run to the end
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
            samples = w.readframes(10**9)
        np.testing.assert_array_equal(np.frombuffer(samples, "<i2"), sf.read(io.BytesIO(saved), dtype="int16")[0])


def test_streaming_a_compressed_format_is_buffered_and_valid(client):
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alice", input="Buffered, then sent.",
                                                            response_format="mp3", extra_body={"stream": True}) as response:
        assert response.headers["x-audio-streaming"] == "buffered"
        data = response.read()
    audio, rate = decode(data, "mp3")
    assert len(audio) / rate > 0.5


def test_multipart_speech_with_an_uploaded_reference(studio_server, tmp_path):
    with studio_server.client() as http, write_voice(tmp_path / "ref.wav", f0=200.0).open("rb") as f, \
            write_voice(tmp_path / "emo.wav", f0=300.0, seconds=1.0).open("rb") as emo:
        r = http.post("/v1/audio/speech", data={"input": "An uploaded voice.", "response_format": "wav", "speed": "1.25",
                                                "generation": json.dumps({"seed": 2}),
                                                "emotion": json.dumps({"mode": "audio", "weight": 0.8})},
                      files={"voice_file": ("../../ref.wav", f, "audio/wav"), "emotion_file": ("emo.wav", emo, "audio/wav")})
    assert r.status_code == 200, r.text
    audio, rate = decode(r.content, "wav")
    assert len(audio) / rate > 0.5
    assert studio_server.leftovers() == []  # the upload was removed after use


def test_voice_library(studio_server, tmp_path):
    voice = write_voice(tmp_path / "v.wav", f0=180.0)
    with studio_server.client() as http:
        def post(name, path=voice, **fields):
            with path.open("rb") as f:
                return http.post("/v1/voices", data={"name": name, **fields}, files={"file": ("v.wav", f, "audio/wav")})

        made = post("Bob Smith", tags="narrator, warm", note="test voice")
        assert made.status_code == 201, made.text
        assert made.json()["tags"] == ["narrator", "warm"]
        again = post("Bob Smith")
        assert again.status_code == 409 and again.json()["error"]["param"] == "name"
        assert post("Bob Smith", overwrite="true").status_code == 200

        sf.write(tmp_path / "quiet.wav", np.zeros(32000, np.float32), 16000)
        silent = post("quiet", path=tmp_path / "quiet.wav")
        assert silent.status_code == 422 and "silent" in silent.json()["error"]["message"]
        (tmp_path / "junk.wav").write_bytes(b"RIFF this is not audio at all")
        junk = post("junk", path=tmp_path / "junk.wav")
        assert junk.status_code == 422 and junk.json()["error"]["param"] == "voice"

        sf.write(tmp_path / "low.wav", np.sin(np.arange(4000) * 0.3).astype(np.float32) * 0.3, 2000)
        low = post("low", path=tmp_path / "low.wav")
        assert low.status_code == 422 and "sample rate" in low.json()["error"]["message"]
        sf.write(tmp_path / "voice.au", sf.read(voice)[0], 16000, format="AU")
        au = post("au", path=tmp_path / "voice.au")
        assert au.status_code == 422 and "not accepted" in au.json()["error"]["message"]

        # A name full of path tricks becomes a plain folder inside the library.
        tricky = post("../../outside")
        assert tricky.status_code == 201
        assert tricky.json()["name"] == "outside"
        assert (studio_server.data_dir / "voices" / "outside" / "voice.json").is_file()
        assert not (studio_server.data_dir.parent / "outside").exists()

        names = [v["name"] for v in http.get("/v1/voices").json()["data"]]
        assert {"alice", "Bob Smith", "outside"} <= set(names) and "quiet" not in names
        assert http.delete("/v1/voices/Bob Smith").json() == {"name": "Bob Smith", "deleted": True}
        assert http.delete("/v1/voices/Bob Smith").status_code == 404
        assert http.delete("/v1/voices/%2e%2e").status_code in (404, 422)
        assert http.delete("/v1/voices/outside").status_code == 200
        assert (studio_server.data_dir / "voices" / "alice" / "voice.wav").is_file()


@pytest.mark.parametrize("body,field", [
    ('{"model": "tts-1", "input": "hi", "voice": "alice", "speed": NaN}', "speed"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "speed": 4.5}, "speed"),
    ({"model": "tts-1", "voice": "alice"}, "input"),
    ({"model": "tts-1", "input": "   ", "voice": "alice"}, "text"),
    ({"model": "tts-1", "input": "x" * 5001, "voice": "alice"}, "text"),
    ({"model": "tts-1", "input": "hi", "voice": "nobody"}, "voice"),
    ({"model": "tts-1", "input": "hi"}, "voice"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "response_format": "aac"}, "output_format"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "generation": {"top_k": 1000}}, "generation.top_k"),
    ('{"model": "tts-1", "input": "hi", "voice": "alice", "generation": {"temperature": Infinity}}', "generation.temperature"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "generation": {"top_p": "lots"}}, "generation.top_p"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "generation": {"quality": "turbo"}}, "generation.quality"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "emotion": {"mode": "vector", "vector": [0.5, 0.5]}}, "emotion.vector"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "emotion": {"mode": "vector", "vector": {"joy": 1}}}, "emotion.vector"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "emotion": {"mode": "joyful"}}, "emotion.mode"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "emotion": {"weight": -1}}, "emotion.weight"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "emotion": {"mode": "audio", "voice": "nobody"}}, "emotion.voice"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "colour": "blue"}, "colour"),
    ({"model": "m", "input": "hi", "voice": "alice"}, "model"),
    ({"model": "indextts-3", "input": "hi", "voice": "alice"}, "model"),
    ({"model": 2.5, "input": "hi", "voice": "alice"}, "model"),
    ({"model": "indextts-2.5", "input": "hi", "voice": "alice"}, "model"),  # not served by this studio (--model 2)
    ({"model": "indextts-2", "input": "hi", "voice": "alice", "language": "fr"}, "language"),
    ({"model": "tts-1", "input": "hi", "voice": "alice", "language": 7}, "language"),
    ("{not json", "body"),
])
def test_bad_fields_get_422_naming_the_field(studio_server, body, field):
    content = body if isinstance(body, str) else json.dumps(body)
    with studio_server.client() as http:
        r = http.post("/v1/audio/speech", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == field
    assert field.split(".")[-1] in error["message"]


def test_schema_and_docs_work_offline(studio_server):
    with studio_server.client() as http:
        schema = http.get("/openapi.json").json()
        assert {"/v1/audio/speech", "/v1/voices", "/v1/voices/{name}", "/healthz", "/readyz"} <= set(schema["paths"])
        body = schema["paths"]["/v1/audio/speech"]["post"]["requestBody"]["content"]
        assert {"application/json", "multipart/form-data"} <= set(body)
        assert {"input", "voice", "speed", "emotion", "generation", "stream"} <= set(body["application/json"]["schema"]["properties"])
        page = http.get("/docs")
        assert page.status_code == 200 and "swagger" in page.text.lower()
        assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
        assert http.get("/docs-static/swagger-ui-bundle.js").status_code == 200


def test_no_cors_headers_by_default(studio_server):
    with studio_server.client() as http:
        preflight = http.options("/v1/audio/speech", headers={"Origin": "https://evil.example",
                                                              "Access-Control-Request-Method": "POST"})
        plain = http.get("/v1/voices", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in plain.headers


def test_nothing_is_served_from_outside_the_data_folder(studio_server):
    secret = studio_server.data_dir.parent / "secret.txt"
    secret.write_text("top secret")
    probes = [f"/gradio_api/file={secret}", f"/gradio_api/file={studio_server.data_dir}/../secret.txt",
              "/gradio_api/file=/etc/passwd", "/file=/etc/passwd", "/docs-static/../webui.py",
              "/docs-static/%2e%2e/%2e%2e/webui.py", f"/gradio_api/file={Path.cwd() / 'webui.py'}"]
    with studio_server.client() as http:
        for probe in probes:
            r = http.get(probe)
            assert r.status_code in (400, 403, 404, 405), (probe, r.status_code)
            assert "top secret" not in r.text and "root:" not in r.text
        # ...while files in the data folder are served (the studio plays its outputs from there).
        output = newest_output(studio_server, ".wav")
        assert http.get(f"/gradio_api/file={output}").status_code == 200


def test_oversized_bodies_are_refused_while_they_arrive(studio_server):
    huge = json.dumps({"model": "tts-1", "voice": "alice", "input": "x" * (2 * 1024 * 1024)}).encode()

    def chunked():  # no Content-Length: the server must count as the bytes come
        for start in range(0, len(huge), 65536):
            yield huge[start:start + 65536]

    with studio_server.client() as http:
        for content in (huge, chunked()):
            r = http.post("/v1/audio/speech", content=content, headers={"content-type": "application/json"})
            assert r.status_code == 413
            assert r.json()["error"]["param"] == "body"
    assert studio_server.alive()


def test_models_lists_the_served_models(studio_server, client):
    # The quick-voice studio serves IndexTTS2 (the quick voice stands in for it) and not IndexTTS-2.5.
    assert [m.id for m in client.models.list()] == ["indextts-2"]
    model = client.models.retrieve("indextts-2")
    assert model.id == "indextts-2" and model.model_extra["default"] is True
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("indextts-2.5")
    with studio_server.client() as http:
        ready = http.get("/readyz").json()
    assert ready["model"] == "indextts-2" and [m["id"] for m in ready["models"]] == ["indextts-2"]
