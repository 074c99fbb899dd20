"""The API in front of the neural engine: tiny random IndexTTS2 weights, so only form is checked
(valid audio of the right kind, streaming, errors), not how it sounds."""

from __future__ import annotations

import io

import numpy as np
import openai
import pytest
import soundfile as sf

from tests.http_server import StudioServer, write_voice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("api-indextts2")
    # The last --engine wins; a fresh machine builds the text normaliser's FSTs first.
    s = StudioServer(root / "data", "--engine", "indextts2", "--model-dir", str(tiny_model_dir), ready_timeout=600)
    try:
        with s.client() as http, write_voice(root / "v.wav").open("rb") as f:
            assert http.post("/v1/voices", data={"name": "v"}, files={"file": ("v.wav", f)}).status_code == 201
        yield s
    finally:
        s.stop()


def test_speech_and_streaming_through_indextts2(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    # A fixed seed: random weights might emit the stop code at once and say nothing.
    extra = {"generation": {"seed": 1234}}
    wav = client.audio.speech.create(model="tts-1", voice="v", input="Hello there.", response_format="wav", extra_body=extra)
    audio, rate = sf.read(io.BytesIO(wav.content), dtype="int16")
    assert rate == 22050 and 0 < len(audio) / rate < 2.5  # the tiny GPT stops within 120 codes
    assert wav.response.headers["x-engine"] == "IndexTTS2"

    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="v", input="Hello there.", response_format="pcm",
            extra_body={**extra, "stream": True}) as response:
        streamed = response.read()
    np.testing.assert_array_equal(np.frombuffer(streamed, "<i2"), audio)  # same seed, same samples

    # The fast preset reaches the engine: the same seed (which gave exact mode the same samples
    # twice above) gives other samples: fewer DiT steps, and a voice prompt of its own (one
    # w2v-BERT pass), so the codes, and with them the length, may differ too.
    fast = client.audio.speech.create(model="tts-1", voice="v", input="Hello there.", response_format="wav",
                                      extra_body={"generation": {"seed": 1234, "quality": "fast"}})
    fast_audio, _ = sf.read(io.BytesIO(fast.content), dtype="int16")
    assert 0 < len(fast_audio) / 22050 < 2.5
    assert len(fast_audio) != len(audio) or not np.array_equal(fast_audio, audio)

    with pytest.raises(openai.UnprocessableEntityError, match="generation.num_beams"):
        client.audio.speech.create(model="tts-1", voice="v", input="Hi.", extra_body={"generation": {"num_beams": 0}})
