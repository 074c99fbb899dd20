"""The Dubbing tab in headless Chromium on the quick voice: upload an SRT, dub it in `fit` mode,
then regenerate one cue with another emotion (the rest kept)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.http_server import write_voice
from tests.screens import screenshot_path
from tests.test_creator_e2e import choose, fetch, open_page, unlabelled_controls
from tests.test_webui_e2e import Server, browser  # noqa: F401  (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SRT = """1
00:00:00,500 --> 00:00:02,500
The weather is bright today.

2
00:00:03,000 --> 00:00:04,000
We will walk along the river after lunch.

3
00:00:05,000 --> 00:00:07,000
See you there.
"""


def test_dub_a_file_and_regenerate_one_cue(browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    server = Server(tmp_path / "data")
    try:
        server.wait_ready()
        with server.client() as http, write_voice(tmp_path / "ann.wav", 200.0).open("rb") as f:
            assert http.post("/v1/voices", data={"name": "Ann"}, files={"file": ("ann.wav", f, "audio/wav")}).status_code == 201
        (tmp_path / "talk.srt").write_text(SRT, encoding="utf-8")

        page = open_page(browser, server)
        page.locator("#tab_dubbing-button").click()
        page.locator("#dub_file input[type=file]").set_input_files(str(tmp_path / "talk.srt"))
        choose(page, "#dub_voice", "Ann")
        page.locator("#dub_fit").get_by_text("Fit", exact=True).click()
        assert unlabelled_controls(page, "#tab_dubbing") == []
        page.locator("#dub_generate_btn").click()
        expect(page.locator("#dub_info")).to_contain_text("3 cues", timeout=180000)
        expect(page.locator("#dub_cues")).to_contain_text("We will walk along the river")
        assert page.locator("#dub_wave svg rect.segment").count() == 3
        _, zipped = fetch(page, server, "#dub_zip")
        with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
            assert {"track.wav", "cues/001.wav", "cues/002.wav", "cues/003.wav", "report.json", "source.srt"} <= set(archive.namelist())
            report = json.loads(archive.read("report.json"))["cues"]
        assert all(a["actual_end"] <= b["start"] for a, b in zip(report, report[1:]))  # fit: no cue runs into the next
        first_seed = report[1]["seed"]

        page.locator("#dub_cue input").fill("2")
        page.locator("#dub_cue input").press("Enter")
        choose(page, "#dub_cue_emotion", "Angry · 怒")
        page.locator("#dub_regenerate_btn").click()
        expect(page.locator("#dub_info")).to_contain_text("(1 rendered now", timeout=180000)
        _, zipped = fetch(page, server, "#dub_zip")
        with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
            again = json.loads(archive.read("report.json"))["cues"]
        assert again[1]["seed"] != first_seed and again[1]["emotion"] == "custom"
        assert [r["seed"] for r in again[::2]] == [r["seed"] for r in report[::2]]  # the others kept
        _, cue = fetch(page, server, "#dub_cue_audio")
        assert cue[:4] == b"RIFF"
        page.screenshot(path=str(screenshot_path("screenshot-dubbing.png")), full_page=True)
    finally:
        server.stop()
