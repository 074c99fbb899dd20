"""Serving on Ray Serve (index_tts/scale/serving.py): the studio's engine as replicas, with the
service's admission, streaming and errors kept.

The service side needs no Ray: an engine that runs `parallel` requests gets that many at once and
a queue per slot. The end-to-end test runs `python -m index_tts serve --ray local --replicas 2`
(which starts and stops its own local Ray instance) and sends it 20 concurrent requests.
"""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf

from index_tts.service import OUTPUT_SAMPLE_RATE, Busy, Limits, SynthesisRequest, Synthesizer
from tests.http_server import StudioServer, write_voice
from tests.test_service_load import HeldEngine, voice

CONCURRENT = 20


class TwoAtOnce(HeldEngine):
    parallel = 2

    def __init__(self):
        super().__init__()
        self.running = 0
        self.most = 0
        self.count = threading.Lock()

    def synthesize(self, request, progress, on_segment=None):
        with self.count:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().synthesize(request, progress, on_segment)
        finally:
            with self.count:
                self.running -= 1


def test_an_engine_with_two_slots_renders_two_at_once_and_queues_per_slot(tmp_path):
    engine = TwoAtOnce()
    synth = Synthesizer(lambda progress: engine, data_dir=tmp_path, limits=Limits(max_queue=1)).start()
    assert synth.wait_until_loaded(10) == "ready"
    request = SynthesisRequest(text="hello", voice=voice())
    with ThreadPoolExecutor(4) as pool:
        admitted = [pool.submit(synth.synthesize, request) for _ in range(4)]   # 2 slots x (1 running + 1 waiting)
        for _ in range(2):
            assert engine.started.acquire(timeout=10)
        for _ in range(300):
            if synth.queue_length() == 4:
                break
            time.sleep(0.01)
        assert synth.queue_length() == 4
        with pytest.raises(Busy) as caught:
            synth.synthesize(request)
        assert caught.value.retry_after_s >= 1
        engine.release.set()
        assert all(f.result(timeout=30).path.is_file() for f in admitted)
    assert engine.most == 2 and engine.finished == 4


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-serve")
    server = StudioServer(root / "data", "--ray", "local", "--replicas", "2", "--max-queue", "2",
                          program=("-m", "index_tts", "serve"), ready_timeout=300)
    yield server
    server.stop()
    # SIGTERM: uvicorn shuts down, then Ray's own SIGTERM handler exits with 15 through Python, so
    # the launcher's exit handlers delete the Serve application and stop the Ray it started (a
    # negative code would mean a kill that skipped them).
    assert server.proc.returncode in (0, 15), server.log.read_text()[-3000:]
    assert "Traceback" not in server.log.read_text()


def test_serve_on_ray_reports_its_replicas(ray_server):
    ready = httpx.get(f"{ray_server.url}/readyz", timeout=10).json()
    assert ready["state"] == "ready" and ready["quick_voice"] is True
    assert "x2 (Ray Serve at local)" in ready["device"]


def test_twenty_concurrent_requests_on_two_replicas_get_200_or_429(ray_server, tmp_path):
    reference = write_voice(tmp_path / "ref.wav", f0=170.0).read_bytes()

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=ray_server.url, timeout=300) as http:
            return http.post("/v1/audio/speech", data={"input": f"Request number {i} is here.", "response_format": "wav"},
                             files={"voice_file": ("ref.wav", reference, "audio/wav")})

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(one, range(CONCURRENT)))
    wall = time.monotonic() - started
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 429}, [r.text[:200] for r in answers if r.status_code not in (200, 429)]
    ok = [r for r in answers if r.status_code == 200]
    assert len(ok) >= 2, statuses                         # 2 replicas x (1 running + 2 waiting) = 6 places
    assert 429 in statuses                                # 20 at once cannot all fit
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["type"] == "rate_limit_error"
    for r in ok:
        audio, rate = sf.read(io.BytesIO(r.content), dtype="int16")
        assert rate == OUTPUT_SAMPLE_RATE and len(audio) > OUTPUT_SAMPLE_RATE // 2
        assert np.abs(audio).max() > 1000
    assert ray_server.alive() and ray_server.leftovers() == []
    print(f"\n[measure] Ray Serve, 2 replicas: {CONCURRENT} concurrent requests in {wall:.1f} s, "
          f"{len(ok)} x 200, {CONCURRENT - len(ok)} x 429")


def test_errors_and_streaming_are_the_same_through_replicas(ray_server, tmp_path):
    t = np.arange(2 * 16000) / 16000
    sf.write(tmp_path / "sine.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    with httpx.Client(base_url=ray_server.url, timeout=300) as http:
        # no voiced speech in the reference: the replica's engine refuses it, the API names the field
        r = http.post("/v1/audio/speech", data={"input": "Hello there.", "response_format": "wav"},
                      files={"voice_file": ("sine.wav", (tmp_path / "sine.wav").read_bytes(), "audio/wav")})
        assert r.status_code == 422 and r.json()["error"]["param"] == "voice", r.text
        reference = write_voice(tmp_path / "ref.wav").read_bytes()
        text = "The first sentence is here, and it goes on for a while. And then a second one follows it."
        r = http.post("/v1/audio/speech", data={"input": text, "response_format": "pcm", "stream": "true",
                                                 "generation": json.dumps({"max_text_tokens_per_segment": 20})},
                      files={"voice_file": ("ref.wav", reference, "audio/wav")})
        assert r.status_code == 200, r.text
        pcm = np.frombuffer(r.content, np.int16)
        assert len(pcm) > OUTPUT_SAMPLE_RATE and np.abs(pcm).max() > 1000
