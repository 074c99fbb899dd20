"""End to end: `python webui.py` in a subprocess, driven by headless Chromium and gradio_client.

Needs Debian's chromium at /usr/bin/chromium (apt-get install chromium) and the playwright
package; never `playwright install`.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.http_server import ROOT, StudioServer, free_port, write_voice
from tests.screens import screenshot_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


class Server(StudioServer):
    """A studio that serves pages (/healthz) but may still be loading its engine."""

    def __init__(self, data_dir: Path, *extra: str):
        super().__init__(data_dir, *extra, ready_timeout=90, wait_for="/healthz")

    def wait_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/readyz", timeout=5)
            if r.status_code == 200:
                return r.json()
            time.sleep(0.3)
        raise AssertionError(f"not ready: {r.status_code} {r.text}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("studio-data")
    s = Server(data)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def check_wav(data: bytes, min_s: float, max_s: float, min_peak: float = 0.01):
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    info = sf.info(io.BytesIO(data))
    assert info.format == "WAV" and info.subtype == "PCM_16" and info.channels == 1
    assert rate == 22050
    assert min_s < len(audio) / rate < max_s, len(audio) / rate
    assert np.abs(audio).max() > min_peak


def test_generate_with_angry_preset_in_the_browser(server, browser, tmp_path):
    from playwright.sync_api import expect

    ready = server.wait_ready()
    assert ready["engine"] and ready["quick_voice"] is True
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url + "/")
    page.wait_for_selector("#generate_btn")
    expect(page.locator("#status_banner")).to_contain_text("ready", timeout=20000)
    expect(page.locator("#status_banner")).to_contain_text("quick voice")  # says plainly it is not IndexTTS2

    page.locator("#voice_audio input[type=file]").set_input_files(str(write_voice(tmp_path / "voice.wav")))
    page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
    page.locator("#text_in textarea").fill("This is simply not acceptable. Fix it now!")
    expect(page.locator("#segment_preview")).to_contain_text("acceptable", timeout=20000)

    page.locator("#emo_preset_angry").click()
    expect(page.locator("#emo_angry input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
    page.locator("#generate_btn").click()

    link = page.locator('#out_audio [data-testid="download-link"]').first
    link.wait_for(state="attached", timeout=120000)
    href = link.get_attribute("href")
    assert href and href.endswith(".wav"), href
    response = page.request.get(href if href.startswith("http") else server.url + href)
    assert response.status == 200
    check_wav(response.body(), 1.0, 15.0)
    expect(page.locator("#history_table")).to_contain_text("acceptable")
    expect(page.locator("#out_info")).to_contain_text("Quick voice")

    # The zh/en switch relabels the page without a reload.
    page.locator("#lang_switch").get_by_text("中文").click()
    expect(page.locator("#generate_btn")).to_have_text("生成语音", timeout=10000)
    page.locator("#lang_switch").get_by_text("English").click()
    expect(page.locator("#generate_btn")).to_have_text("Generate", timeout=10000)

    page.screenshot(path=str(screenshot_path("screenshot-ui.png")), full_page=True)
    page.close()


def test_gradio_client_synthesize(server, tmp_path):
    from gradio_client import Client, handle_file

    server.wait_ready()
    client = Client(server.url + "/", verbose=False)
    result = client.predict(
        voice=handle_file(str(write_voice(tmp_path / "v.wav"))),
        text="Hello from the API.",
        emo_mode="vector",
        happy=0.8,
        api_name="/synthesize",
    )
    audio_path = Path(result[0])
    check_wav(audio_path.read_bytes(), 0.5, 15.0)
    # The file was written under the server's data folder with a collision-free name.
    outputs = list((server.data_dir / "outputs").glob("*.wav"))
    assert any(p.name == audio_path.name for p in outputs)
    with pytest.raises(Exception, match="text"):
        client.predict(voice=handle_file(str(tmp_path / "v.wav")), text="   ", api_name="/synthesize")

    # Saved presets keep the voice and every parameter.
    choices, message = client.predict("../Angry narrator", handle_file(str(tmp_path / "v.wav")), None, "vector", 0.7,
                                      api_name="/save_preset")
    assert "Angry narrator" in message
    loaded = client.predict("Angry narrator", api_name="/load_preset")
    assert Path(loaded[0]).read_bytes() == (tmp_path / "v.wav").read_bytes()
    assert loaded[2:4] == ("vector", 0.7)
    client.predict("Angry narrator", api_name="/delete_preset")
    assert not (server.data_dir / "presets" / "Angry narrator").exists()


def test_loading_state_is_shown(browser, tmp_path):
    from playwright.sync_api import expect

    s = Server(tmp_path, "--load-delay", "120")
    try:
        r = httpx.get(f"{s.url}/readyz", timeout=5)
        assert r.status_code == 503
        assert r.json()["state"] == "loading" and "Retry-After" in r.headers
        page = browser.new_page()
        page.goto(s.url + "/")
        page.wait_for_selector("#generate_btn")
        banner = page.locator("#status_banner")
        expect(banner).to_contain_text("Loading", timeout=20000)
        expect(banner).to_contain_text("%")
        expect(page.locator('#status_banner [data-state="loading"]')).to_have_count(1)
        expect(page.locator("#segments_note")).to_contain_text("loading")
        page.close()
    finally:
        s.stop()


def test_token_is_required_off_loopback_and_enforced(tmp_path):
    refused = subprocess.run([sys.executable, "webui.py", "--host", "0.0.0.0", "--port", str(free_port())],
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "INDEX_TTS_TOKEN"})
    assert refused.returncode != 0 and "token" in refused.stderr
    s = Server(tmp_path, "--auth-token", "s3cret-token")
    try:
        assert httpx.get(f"{s.url}/healthz").status_code == 200
        assert httpx.get(f"{s.url}/readyz").status_code == 401
        assert httpx.get(f"{s.url}/").status_code == 401
        assert httpx.get(f"{s.url}/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{s.url}/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        with httpx.Client(base_url=s.url, follow_redirects=True) as c:
            r = c.get("/?token=s3cret-token")
            assert r.status_code == 200 and "token=" not in str(r.url)
            assert c.get("/readyz").status_code in (200, 503)  # the cookie now opens every route
    finally:
        s.stop()


def test_indextts2_in_the_browser(browser, tiny_model_dir, tmp_path):
    """The neural engine behind the same page: tiny random weights, so only form is checked."""
    from playwright.sync_api import expect

    s = Server(tmp_path, "--engine", "indextts2", "--model-dir", str(tiny_model_dir))  # the last --engine wins
    try:
        ready = s.wait_ready(timeout=600)  # a fresh machine builds the text normaliser's FSTs first
        assert ready["engine"] == "IndexTTS2" and ready["quick_voice"] is False
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(s.url + "/")
        page.wait_for_selector("#generate_btn")
        banner = page.locator("#status_banner")
        expect(banner).to_contain_text("ready", timeout=20000)
        expect(banner).to_contain_text("IndexTTS2")
        expect(banner).not_to_contain_text("quick voice")

        page.locator("#voice_audio input[type=file]").set_input_files(str(write_voice(tmp_path / "voice.wav")))
        page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
        page.locator("#text_in textarea").fill("This is simply not acceptable!")
        # IndexTTS2's text front end upper-cases English, as upstream's does.
        expect(page.locator("#segment_preview")).to_contain_text("acceptable", ignore_case=True, timeout=20000)
        page.locator("#emo_preset_angry").click()
        expect(page.locator("#emo_angry input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
        # A fixed seed: random weights might emit the stop code at once and say nothing.
        page.locator("#advanced").get_by_text("Advanced generation settings").click()
        seed = page.locator("#seed input[type=number]")
        seed.fill("1234")
        seed.press("Tab")
        expect(seed).to_have_value("1234")
        page.locator("#generate_btn").click()

        link = page.locator('#out_audio [data-testid="download-link"]').first
        link.wait_for(state="attached", timeout=300000)
        href = link.get_attribute("href")
        response = page.request.get(href if href.startswith("http") else s.url + href)
        assert response.status == 200
        # The default max_mel_tokens (1500) is clamped to the tiny GPT's 120 codes: at most
        # 120 * 1.72 mel frames of 256 samples, 2.4 s. Random BigVGAN weights speak very quietly,
        # so any signal at all counts.
        check_wav(response.body(), 0.01, 2.5, min_peak=0.0)
        expect(page.locator("#out_info")).to_contain_text("IndexTTS2")
        page.close()

        # Text mode without a Qwen model in the directory: the result says the lexicon read it.
        from gradio_client import Client, handle_file

        result = Client(s.url + "/", verbose=False).predict(
            voice=handle_file(str(tmp_path / "voice.wav")), text="Fix it now!", emo_mode="text",
            emo_text="furious and angry", seed=1234, api_name="/synthesize")
        check_wav(Path(result[0]).read_bytes(), 0.01, 2.5, min_peak=0.0)
        assert "IndexTTS2" in result[1] and "lexicon" in result[1]
    finally:
        s.stop()
