"""The Synthesize tab at a laptop's 1366x768, generate-on-click, the emotion audition and a
per-line dialogue regenerate, in headless Chromium on the quick voice."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

from index_tts.service import builtin_emotion_presets
from tests.test_creator_e2e import choose, fetch
from tests.http_server import write_voice
from tests.screens import screenshot_path
from tests.test_webui_e2e import Server, browser  # noqa: F401  (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("takes-e2e")
    s = Server(root / "data")
    try:
        s.wait_ready()
        with s.client() as client:
            for name, f0 in (("Ann voice", 110), ("Ben voice", 210)):
                with write_voice(root / f"{f0}.wav", f0=f0).open("rb") as f:
                    created = client.post("/v1/voices", data={"name": name}, files={"file": (f"{f0}.wav", f, "audio/wav")})
                    assert created.status_code == 201, created.text
        yield s
    finally:
        s.stop()


def open_page(browser, server):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=LAPTOP)
    page.goto(server.url + "/")
    page.wait_for_selector("#generate_btn")
    expect(page.locator("#status_banner")).to_contain_text("ready", timeout=20000)
    return page


def on_screen(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not laid out"
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= LAPTOP["width"] \
        and box["y"] + box["height"] <= LAPTOP["height"]


def test_voice_text_presets_and_generate_fit_one_laptop_screen_and_a_click_generates(browser, server, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, server)
    assert page.evaluate("window.scrollY") == 0
    wanted = ["#voice_audio", "#text_in textarea", "#generate_btn", "#gen_on_click",
              *[f"#emo_preset_{p['id']}" for p in builtin_emotion_presets()]]
    assert [s for s in wanted if not on_screen(page, s)] == []
    page.screenshot(path=str(screenshot_path("screenshot-laptop.png")))

    # With "generate on preset click" ticked, one click on a preset is enough.
    page.locator("#voice_audio input[type=file]").set_input_files(str(write_voice(tmp_path / "voice.wav")))
    page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
    page.locator("#text_in textarea").fill("One click and it speaks.")
    page.locator("#gen_on_click input").check()
    page.locator("#emo_preset_angry").click()
    _, audio = fetch(page, server, "#out_audio")
    assert sf.info(io.BytesIO(audio)).duration > 0.5
    expect(page.locator("#emo_angry input[type=number]")).to_have_value(re.compile(r"^0\.8"))
    history = server.data_dir / "history"
    records = [json.loads(p.read_text()) for p in history.glob("*.json")]
    assert len(records) == 1 and records[0]["request"]["emotion"]["vector"][1] > 0.5   # angry

    # Unticked, a preset click only sets the sliders.
    page.locator("#gen_on_click input").uncheck()
    page.locator("#emo_preset_sad").click()
    expect(page.locator("#emo_sad input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
    page.wait_for_timeout(1500)
    assert len(list(history.glob("*.json"))) == 1
    page.close()


def test_emotion_audition_plays_each_take_and_use_this_sets_the_emotion(browser, server, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, server)
    page.locator("#voice_audio input[type=file]").set_input_files(str(write_voice(tmp_path / "voice.wav")))
    page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
    page.locator("#text_in textarea").fill("Which feeling fits this line?")
    page.locator("#aud_section").get_by_text("Emotion audition").first.click()
    page.locator("#aud_start_btn").click()
    expect(page.locator("#aud_info")).to_contain_text("All 8 takes ready", timeout=180000)
    takes = []
    for i in range(8):
        expect(page.locator(f"#aud_take_{i}")).to_be_visible()
        _, audio = fetch(page, server, f"#aud_take_{i}_audio")
        takes.append(sf.read(io.BytesIO(audio), dtype="int16")[0])
    assert len({a.tobytes() for a in takes}) == 8 and all(np.abs(a).max() > 300 for a in takes)
    expect(page.locator("#aud_take_8")).to_be_hidden()
    page.screenshot(path=str(screenshot_path("screenshot-audition.png")), full_page=True)

    page.locator("#aud_use_3").click()   # afraid
    expect(page.locator("#emo_afraid input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
    expect(page.locator("#emo_happy input[type=number]")).to_have_value("0")
    page.close()


def test_one_dialogue_line_is_regenerated_and_the_rest_kept(browser, server):
    from playwright.sync_api import expect

    page = open_page(browser, server)
    page.locator("#tab_dialogue-button").click()
    page.locator("#dlg_script textarea").fill("Ann: Are you coming tonight?\nBen: I might be.\nAnn: Please do come.")
    expect(page.locator("#dlg_roles_note")).to_contain_text("Ann, Ben", timeout=20000)
    choose(page, "#dlg_role_0_voice", "Ann voice")
    choose(page, "#dlg_role_1_voice", "Ben voice")
    page.locator("#dlg_generate_btn").click()
    _, first = fetch(page, server, "#dlg_audio", timeout=180000)
    lines = page.locator("#dlg_lines")
    expect(lines).to_contain_text("Please do come.")
    before = lines.inner_text()

    page.locator("#dlg_regen_line input").fill("2")
    page.locator("#dlg_regen_seed input").fill("4242")
    choose(page, "#dlg_regen_emotion", "Sad · 哀")
    page.locator("#dlg_regen_btn").click()
    expect(page.locator("#dlg_info")).to_contain_text("Line 2 voiced again", timeout=180000)
    expect(lines).to_contain_text("4242")
    _, second = fetch(page, server, "#dlg_audio")
    a, b = (sf.read(io.BytesIO(x), dtype="int16")[0] for x in (first, second))
    dialogues = sorted((json.loads(p.read_text()) for p in (server.data_dir / "history").glob("*.json")),
                       key=lambda r: r["id"])
    old, new = [r["lines"] for r in dialogues if r["kind"] == "dialogue"][-2:]
    assert [line["seed"] for line in new] == [old[0]["seed"], 4242, old[2]["seed"]]
    # Lines 1 and 3 are the same to the sample (the mix ends with line 3, wherever it now starts);
    # line 2 changed (sad now).
    head, tail = round(old[0]["end"] * 22050), round((old[2]["end"] - old[2]["start"]) * 22050) - 2
    assert np.array_equal(a[:head], b[:head]) and np.array_equal(a[-tail:], b[-tail:]) and not np.array_equal(a, b)
    page.close()
