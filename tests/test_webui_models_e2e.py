"""End to end in headless Chromium: a studio serving both tiny models (`--model both`), the model
switch turned to IndexTTS-2.5, its language chosen, and speech generated. The recipe (Debian's
chromium, no `playwright install`) is test_webui_e2e.py's."""

from __future__ import annotations

import pytest

from tests.http_server import write_voice
from tests.screens import screenshot_path
from tests.test_webui_e2e import Server, browser, check_wav  # noqa: F401  (browser: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_switch_to_25_choose_a_language_and_generate(browser, tiny_model_dir, tiny25_model_dir, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    s = Server(tmp_path / "data", "--engine", "indextts2", "--model", "both", "--model-dir", str(tiny_model_dir),
               "--model-dir-25", str(tiny25_model_dir))
    try:
        assert s.wait_ready(timeout=600)["engine"] == "IndexTTS2"
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(s.url + "/")
        page.wait_for_selector("#generate_btn")
        switch, language, banner = page.locator("#model_switch"), page.locator("#tts_language"), page.locator("#status_banner")
        expect(banner).to_contain_text("IndexTTS2", timeout=20000)
        expect(switch.get_by_text("IndexTTS-2.5", exact=True)).to_be_visible()
        expect(language).to_be_hidden()  # IndexTTS2 reads zh and en by itself

        page.locator("#voice_audio input[type=file]").set_input_files(str(write_voice(tmp_path / "voice.wav")))
        page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
        page.locator("#text_in textarea").fill("Good morning to everyone here.")

        # Choosing 2.5 loads it (the banner follows the chosen model) and shows its language choice.
        switch.get_by_text("IndexTTS-2.5", exact=True).click()
        expect(language).to_be_visible(timeout=10000)
        expect(banner).to_contain_text("IndexTTS-2.5", timeout=300000)
        expect(banner).to_contain_text("ready", timeout=300000)
        language.get_by_text("English", exact=True).click()
        expect(page.locator("#segment_preview")).to_contain_text("morning", ignore_case=True, timeout=30000)

        # A fixed seed and a short code cap: random weights might not stop on their own.
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
        check_wav(response.body(), 0.01, 10.0, min_peak=0.0)  # random weights: any signal at all
        expect(page.locator("#out_info")).to_contain_text("IndexTTS-2.5")
        page.screenshot(path=str(screenshot_path("screenshot-models.png")), full_page=True)
        page.close()

        entry = s.client().get("/readyz").json()
        assert [m["state"] for m in entry["models"]] == ["ready", "ready"]
        records = sorted((s.data_dir / "history").glob("*.json"))
        assert records and '"model": "indextts-2.5"' in records[-1].read_text() and '"language": "en"' in records[-1].read_text()
    finally:
        s.stop()
