"""Faults on a real server: an engine that raises, requests that time out, clients that hang up,
a full queue, corrupt voice/preset files, the token on every route, and a SIGKILL mid-generation
followed by `./start_app.sh start`.

The server runs with `--fault-injection` (a test aid: text markers such as {{fault:raise}} make
the engine fail on purpose; see index_tts/engines/faults.py)."""

from __future__ import annotations

import json
import os
import signal
import threading

import httpx
import openai
import pytest

from tests.http_server import StudioServer, write_voice
from tests.test_start_app import assert_ok, read_pid_file, wait_until

pytestmark = pytest.mark.slow

TOKEN = "fault-test-token"
TIMEOUT_S = 5
ALLOWED_ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = root / "data"
    # Damage planted before start: the server must come up, report them, and carry on.
    (data / "voices" / "broken").mkdir(parents=True)
    (data / "voices" / "broken" / "voice.json").write_text("{ this is not json")
    (data / "voices" / "noaudio").mkdir()
    (data / "voices" / "noaudio" / "voice.json").write_text(json.dumps({"name": "noaudio", "tags": []}))
    (data / "presets" / "mangled").mkdir(parents=True)
    (data / "presets" / "mangled" / "preset.json").write_bytes(b"\xff\xfe garbage")
    s = StudioServer(data, "--fault-injection", "--max-queue", "1", "--request-timeout", str(TIMEOUT_S),
                     "--max-upload-mb", "1", "--cors-origin", ALLOWED_ORIGIN, token=TOKEN)
    try:
        with s.client() as http, write_voice(root / "good.wav").open("rb") as f:
            assert http.post("/v1/voices", data={"name": "good"}, files={"file": ("g.wav", f)}).status_code == 201
        yield s
    finally:
        s.stop()


def speak(http: httpx.Client, text: str, **extra) -> httpx.Response:
    return http.post("/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "good", "response_format": "wav", **extra})


def outputs(server) -> set[str]:
    return {p.name for p in (server.data_dir / "outputs").iterdir()}


def queue(server) -> int:
    return httpx.get(f"{server.url}/readyz", headers=server.headers, timeout=5).json()["queue"]


def test_the_token_guards_api_docs_and_ui_alike(server):
    for method, path in [("GET", "/v1/voices"), ("POST", "/v1/audio/speech"), ("DELETE", "/v1/voices/good"),
                         ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/"), ("GET", "/readyz"),
                         ("GET", "/gradio_api/info")]:
        r = httpx.request(method, server.url + path, timeout=10)
        assert r.status_code == 401, (method, path, r.status_code)
        wrong = httpx.request(method, server.url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401, (method, path)
    assert httpx.get(server.url + "/healthz").status_code == 200
    with server.client() as http:
        assert http.get("/v1/voices").status_code == 200
        assert http.get("/docs").status_code == 200
        assert http.get("/").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).audio.speech.create(
            model="tts-1", voice="good", input="no")
    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0)
    assert len(good.audio.speech.create(model="tts-1", voice="good", input="Token accepted.").content) > 1000


def test_cors_only_for_the_named_origin(server):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(f"{server.url}/v1/audio/speech", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = httpx.options(f"{server.url}/v1/audio/speech", headers={"Origin": "https://evil.example", **preflight})
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
    # A preflight answers nothing but headers; the real request still needs the token.
    assert httpx.get(f"{server.url}/v1/voices", headers={"Origin": ALLOWED_ORIGIN}).status_code == 401


def test_uploads_over_the_limit_get_413_and_leave_nothing(server):
    big = b"RIFF" + bytes(2 * 1024 * 1024)
    with server.client() as http:
        r = http.post("/v1/voices", data={"name": "huge"}, files={"file": ("big.wav", big)})
        assert r.status_code == 413 and "too large" in r.json()["error"]["message"]
        r = http.post("/v1/audio/speech", data={"input": "hi"}, files={"voice_file": ("big.wav", big)})
        assert r.status_code == 413
        assert http.get("/v1/voices/huge").status_code == 404
    assert server.leftovers() == []


def test_corrupt_voice_and_preset_files_are_reported_and_skipped(server):
    with server.client() as http:
        listing = http.get("/v1/voices").json()
        assert [v["name"] for v in listing["data"]] == ["good"]
        problems = {p["name"]: p["message"] for p in listing["problems"]}
        assert set(problems) == {"broken", "noaudio"}
        assert "corrupt" in problems["broken"] and "voice.wav" in problems["noaudio"]
        assert http.get("/").status_code == 200  # the page loads despite the mangled preset
        bad = speak(http, "Hello.", voice="broken")
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "voice"
        assert speak(http, "The good voice still works.").status_code == 200


def test_an_engine_exception_is_a_clean_500_and_the_next_request_works(server):
    with server.client() as http:
        before = outputs(server)
        failed = speak(http, "This will fail {{fault:raise}} halfway.")
        assert failed.status_code == 500
        assert "injected engine fault" in failed.json()["error"]["message"]
        streamed = speak(http, "Streaming fails too {{fault:raise}}.", stream=True)
        assert streamed.status_code == 500 and "injected engine fault" in streamed.json()["error"]["message"]
        assert outputs(server) == before
        assert speak(http, "And now it works again.").status_code == 200
    assert server.alive()


def test_a_request_past_its_timeout_gets_504_and_writes_nothing(server):
    with server.client() as http:
        before = outputs(server)
        r = speak(http, "Too slow {{fault:slow=60}}.")
        assert r.status_code == 504
        assert f"longer than {TIMEOUT_S} s" in r.json()["error"]["message"]
        assert outputs(server) == before
        assert speak(http, "Fine again.").status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_cancels_its_work(server, stream):
    before = outputs(server)
    # The engine would take 60 s; the request timeout (5 s) must not be what ends it, so the
    # client leaves after 1.5 s and the queue must empty well before the timeout.
    with server.client(timeout=1.5) as http, pytest.raises(httpx.ReadTimeout):
        speak(http, "Nobody waits for this {{fault:slow=60}}.", stream=stream, response_format="pcm")
    assert wait_until(lambda: queue(server) == 0, TIMEOUT_S - 1.5 - 0.5)
    assert outputs(server) == before
    assert server.leftovers() == []


def test_a_full_queue_answers_429_with_retry_after(server):
    answers = []

    def slow():
        with server.client() as http:
            answers.append(speak(http, "Holding the engine {{fault:slow=1.5}}.").status_code)

    # One running + one waiting fill --max-queue 1; both finish within the 5 s request timeout.
    threads = [threading.Thread(target=slow) for _ in range(2)]
    for admitted, t in enumerate(threads, start=1):
        t.start()
        assert wait_until(lambda: queue(server) >= admitted, 10)
    with server.client() as http:
        busy = speak(http, "No room for me.")
    for t in threads:
        t.join(30)
    assert busy.status_code == 429
    assert int(busy.headers["retry-after"]) >= 1
    assert busy.json()["error"]["type"] == "rate_limit_error"
    assert answers == [200, 200]


def test_sigkill_mid_generation_then_start_recovers_cleanly(tmp_path):
    from tests.test_start_app import Launcher

    launcher = Launcher(tmp_path)
    try:
        assert_ok(launcher("start", "--fault-injection"))
        url = f"http://127.0.0.1:{launcher.port}"
        data = launcher.data_dir
        reference = write_voice(tmp_path / "alice.wav")

        def uploads() -> list:  # tmp/gradio is Gradio's own folder, emptied at start too
            return [p for p in (data / "tmp").iterdir() if p.is_file()]
        with httpx.Client(base_url=url, timeout=60) as http:
            assert wait_until(lambda: http.get("/readyz").status_code == 200, 60)
            with reference.open("rb") as f:
                assert http.post("/v1/voices", data={"name": "alice"}, files={"file": ("a.wav", f)}).status_code == 201

        def doomed():
            try:
                with reference.open("rb") as f:
                    httpx.post(f"{url}/v1/audio/speech", data={"input": "Cut short {{fault:slow=60}}", "response_format": "wav"},
                               files={"voice_file": ("ref.wav", f)}, timeout=120)
            except httpx.HTTPError:
                pass  # the server dies under it

        request = threading.Thread(target=doomed)
        request.start()
        assert wait_until(lambda: httpx.get(f"{url}/readyz").json().get("queue") == 1, 30)
        assert uploads()  # the upload is on disk while it generates
        pid = int(read_pid_file(launcher.pid_file)["pid"])
        os.kill(pid, signal.SIGKILL)
        request.join(30)
        # What a kill in the middle of an atomic write leaves (the write itself is too short to hit).
        (data / "voices" / "alice" / ".voice.wav.k1ll.tmp").write_bytes(b"RIFF half a file")
        (data / "tmp" / "gradio" / "upload-of-the-dead-page.wav").write_bytes(b"RIFF")

        assert_ok(launcher("start", "--fault-injection"))
        assert uploads() == []                                # the crash's upload was cleared
        assert not (data / "tmp" / "gradio" / "upload-of-the-dead-page.wav").exists()
        assert list((data / "outputs").iterdir()) == []        # no partial output
        assert not list(data.rglob("*.tmp"))
        assert sorted(p.name for p in (data / "voices").iterdir()) == ["alice"]
        assert sorted(p.name for p in (data / "voices" / "alice").iterdir()) == ["voice.json", "voice.wav"]
        with httpx.Client(base_url=url, timeout=60) as http:
            assert wait_until(lambda: http.get("/readyz").status_code == 200, 60)
            listing = http.get("/v1/voices").json()
            assert [v["name"] for v in listing["data"]] == ["alice"] and listing["problems"] == []
            after = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "Back again.", "voice": "alice"})
            assert after.status_code == 200
        assert len(list((data / "outputs").iterdir())) == 1
    finally:
        launcher.cleanup()
