"""Bounded load on a real server: 50 concurrent quick-voice requests (half with an uploaded
reference). Every answer is 200 or 429 (with Retry-After), the server stays up, and no temporary
file is left. Prints throughput, p50/p95 latency and rejections (run with -s to see them)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.http_server import write_voice

pytestmark = pytest.mark.slow

CONCURRENT = 50


def test_fifty_concurrent_requests(studio_server, tmp_path):
    reference = write_voice(tmp_path / "ref.wav", f0=170.0).read_bytes()
    before = set((studio_server.data_dir / "outputs").iterdir())

    def one(i: int) -> tuple[int, float, httpx.Headers]:
        started = time.monotonic()
        with httpx.Client(base_url=studio_server.url, timeout=300) as http:
            if i % 2:
                r = http.post("/v1/audio/speech", data={"input": f"Request {i} is here.", "response_format": "wav"},
                              files={"voice_file": ("ref.wav", reference, "audio/wav")})
            else:
                r = http.post("/v1/audio/speech", content=json.dumps({"model": "tts-1", "input": f"Request {i} is here.",
                                                                      "voice": "alice", "response_format": "wav"}),
                              headers={"content-type": "application/json"})
        return r.status_code, time.monotonic() - started, r.headers

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(one, range(CONCURRENT)))
    wall = time.monotonic() - started

    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    ok = [latency for status, latency, _ in answers if status == 200]
    rejected = [headers for status, _, headers in answers if status == 429]
    assert ok, "nothing got through"
    for headers in rejected:
        assert int(headers["retry-after"]) >= 1
    assert studio_server.alive()
    assert studio_server.leftovers() == []
    made = set((studio_server.data_dir / "outputs").iterdir()) - before
    assert len(made) == len(ok)  # one file per success, none for a rejection
    print(f"\nload: {CONCURRENT} concurrent requests in {wall:.1f} s: {len(ok)} x 200, {len(rejected)} x 429; "
          f"throughput {len(ok) / wall:.2f} req/s; latency of successes p50 {np.percentile(ok, 50):.2f} s, "
          f"p95 {np.percentile(ok, 95):.2f} s")


def test_page_and_api_share_one_synthesizer_without_mixing_voices(studio_server, tmp_path):
    """The studio page (through gradio_client) and the API run at the same time on two voices;
    every result equals what the same request gives alone, so no cache mixes them up."""
    from gradio_client import Client, handle_file

    page_voice = write_voice(tmp_path / "page.wav", f0=210.0)
    text, seed = "Two front ends, one engine.", 21
    ui = Client(studio_server.url + "/", verbose=False)

    def via_page() -> bytes:
        path = ui.predict(voice=handle_file(str(page_voice)), text=text, emo_mode="same_as_voice", seed=seed,
                          api_name="/synthesize")[0]
        return open(path, "rb").read()

    def via_api() -> bytes:
        with studio_server.client() as http:
            r = http.post("/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "alice",
                                                    "response_format": "wav", "generation": {"seed": seed}})
            assert r.status_code == 200, r.text
            return r.content

    alone = {"page": via_page(), "api": via_api()}
    assert alone["page"] != alone["api"]
    jobs = ["page", "api"] * 3
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: via_page() if job == "page" else via_api(), jobs))
    for job, audio in zip(jobs, results):
        assert audio == alone[job], job
