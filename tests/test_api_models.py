"""The HTTP API of a studio serving both models (`--model both`, tiny random weights): the official
OpenAI client asks each model by name, OpenAI's model names get the default, /v1/models lists both,
and the native fields (language) reach IndexTTS-2.5."""

from __future__ import annotations

import io

import openai
import pytest
import soundfile as sf

from tests.http_server import StudioServer, write_voice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_model_dir, tiny25_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("api-models")
    s = StudioServer(root / "data", "--engine", "indextts2", "--model", "both", "--model-dir", str(tiny_model_dir),
                     "--model-dir-25", str(tiny25_model_dir), ready_timeout=600)
    try:
        with s.client() as http, write_voice(root / "v.wav").open("rb") as f:
            assert http.post("/v1/voices", data={"name": "v"}, files={"file": ("v.wav", f)}).status_code == 201
        yield s
    finally:
        s.stop()


def test_one_request_per_model_through_the_openai_client(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=600)
    assert [m.id for m in client.models.list()] == ["indextts-2", "indextts-2.5"]
    assert server.client().get("/readyz").json()["models"][1]["state"] == "not loaded"  # 2.5 waits for its first request

    # Greedy, capped: random weights might otherwise never stop.
    extra = {"generation": {"seed": 1234, "do_sample": False, "num_beams": 1, "max_mel_tokens": 60}}
    engines = {}
    for model in ("indextts-2", "indextts-2.5", "tts-1"):
        body = {**extra, "language": "en"} if model == "indextts-2.5" else extra
        speech = client.audio.speech.create(model=model, voice="v", input="Hello there.", response_format="wav", extra_body=body)
        audio, rate = sf.read(io.BytesIO(speech.content), dtype="int16")
        assert rate == 22050 and len(audio) > 0
        engines[model] = speech.response.headers["x-engine"]
    assert engines == {"indextts-2": "IndexTTS2", "indextts-2.5": "IndexTTS-2.5", "tts-1": "IndexTTS2"}  # tts-1: the default
    assert [m["state"] for m in server.client().get("/readyz").json()["models"]] == ["ready", "ready"]

    with pytest.raises(openai.UnprocessableEntityError, match="model") as bad:
        client.audio.speech.create(model="indextts-9", voice="v", input="Hi.")
    assert bad.value.body["param"] == "model"
    with pytest.raises(openai.UnprocessableEntityError, match="language") as bad:
        client.audio.speech.create(model="indextts-2.5", voice="v", input="Hi.", extra_body={"language": "klingon"})
    assert bad.value.body["param"] == "language"
