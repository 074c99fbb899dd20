"""The creator workflow end to end in headless Chromium, each flow once, on the quick voice.

One data folder, two server lives: the first saves two voices and speaks a tagged text; the
second (a restart) reuses a saved voice, shows the first life's history, and voices a dialogue.
Screenshots of the new pages go to docs/ for the README when INDEX_TTS_UPDATE_SCREENSHOTS=1 (tests/screens.py).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from index_tts.subtitles import parse_srt
from tests.screens import screenshot_path
from tests.test_webui_e2e import ROOT, Server, browser  # noqa: F401  (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TAGGED = "It starts quite calmly. [happy] What wonderful news this is! [sad:0.6] But then the rain came."


def pitched_voice(path: Path, f0: float) -> Path:
    sr = 16000
    t = np.arange(int(2.0 * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(2 * np.pi * 3 * t))) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 15))
    sf.write(path, (0.25 * wave / np.abs(wave).max()).astype(np.float32), sr)
    return path


def median_f0(audio: np.ndarray, rate: int) -> float:
    import pyworld

    f0, _ = pyworld.harvest(audio.astype(np.float64), rate, f0_floor=50, f0_ceil=600)
    voiced = f0[f0 > 0]
    assert voiced.size > 10, "no voiced frames"
    return float(np.median(voiced))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("creator-data")


def open_page(browser, server):
    from playwright.sync_api import expect

    server.wait_ready()
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(server.url + "/")
    page.wait_for_selector("#generate_btn")
    expect(page.locator("#status_banner")).to_contain_text("ready", timeout=20000)
    return page


def fetch(page, server, selector: str, timeout: float = 120000) -> tuple[str, bytes]:
    link = page.locator(f'{selector} a[href*="/file="], {selector} [data-testid="download-link"]').first
    link.wait_for(state="attached", timeout=timeout)
    href = link.get_attribute("href")
    response = page.request.get(href if href.startswith("http") else server.url + href)
    assert response.status == 200, href
    return href, response.body()


def unlabelled_controls(page, panel: str) -> list[str]:
    """Form controls and buttons in `panel` that a screen reader could not name."""
    return page.evaluate("""(panel) => {
        const root = document.querySelector(panel);
        const named = (el) => (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.title
            || (el.labels && [...el.labels].some(l => l.textContent.trim())) || (el.tagName === 'BUTTON' && el.textContent.trim())
            || el.closest('label')?.textContent.trim());
        return [...root.querySelectorAll('input:not([type=hidden]), textarea, select, button')]
            .filter(el => el.offsetParent !== null && !named(el))
            .map(el => (el.closest('[id]')?.id || '?') + ' ' + el.outerHTML.slice(0, 80));
    }""", panel)


def choose(page, dropdown: str, option: str):
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).filter(visible=True).first.click()


def test_first_life_library_and_inline_tags(browser, data_dir, tmp_path):
    from playwright.sync_api import expect

    server = Server(data_dir)
    try:
        page = open_page(browser, server)
        # Save two voices of different pitch, with tags, a note and a default emotion.
        page.locator("#tab_library-button").click()
        for name, f0, tags in (("Low voice", 100, "deep, narrator"), ("High voice", 220, "bright")):
            page.locator("#lib_new_audio input[type=file]").set_input_files(str(pitched_voice(tmp_path / f"{f0}.wav", f0)))
            page.locator('#lib_new_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
            page.locator("#lib_name input").fill(name)
            page.locator("#lib_tags input").fill(tags)
            page.locator("#lib_note textarea").fill(f"{name} for the e2e test")
            if name == "High voice":
                choose(page, "#lib_emotion", "Happy · 喜")
            page.locator("#lib_save_btn").click()
            expect(page.locator("#lib_info")).to_contain_text(f"Saved voice {name}", timeout=20000)
        expect(page.locator("#lib_voices")).to_contain_text("High voice")
        page.locator("#lib_voices").get_by_text("Low voice", exact=True).click()
        expect(page.locator("#lib_details")).to_contain_text("deep, narrator", timeout=20000)
        page.screenshot(path=str(screenshot_path("screenshot-library.png")), full_page=True)
        # Saving under a taken name is refused unless "replace" is ticked.
        page.locator("#lib_new_audio input[type=file]").set_input_files(str(tmp_path / "220.wav"))
        page.locator('#lib_new_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
        page.locator("#lib_name input").fill("Low voice")
        page.locator("#lib_save_btn").click()
        expect(page.locator(".toast-body, [data-testid='toast-body']").first).to_contain_text("already exists", timeout=20000)
        page.locator(".toast-close").first.click()

        assert unlabelled_controls(page, "#tab_library") == []

        # A user emotion preset: saved from the current sliders, shown as a button reached by keyboard.
        page.locator("#tab_synth-button").click()
        page.locator("#emo_preset_sad").click()
        expect(page.locator("#emo_sad input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
        page.locator("#emo_weight input[type=number]").fill("0.55")
        page.locator("#emo_weight input[type=number]").press("Tab")
        page.locator("#emo_user_name input").fill("Gloomy")
        page.locator("#emo_user_save_btn").click()
        expect(page.locator("#emo_user_info")).to_contain_text("Saved emotion preset Gloomy", timeout=20000)
        page.locator("#emo_preset_happy").click()
        expect(page.locator("#emo_sad input[type=number]")).to_have_value("0", timeout=10000)
        page.locator("#emo_mode input").last.focus()   # the one-click row is up beside Generate; the user's follow the mode
        page.keyboard.press("Tab")
        expect(page.locator("#emo_user_0")).to_be_focused()
        expect(page.locator("#emo_user_0")).to_have_text("Gloomy")
        page.keyboard.press("Enter")
        expect(page.locator("#emo_sad input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
        expect(page.locator("#emo_weight input[type=number]")).to_have_value("0.55")
        assert (data_dir / "emotion_presets.json").is_file()
        page.locator("#emo_mode").get_by_text("Same as the voice reference").click()

        # Inline tags: the preview and the result list each segment's emotion as the engine got it.
        page.locator("#voice_pick").get_by_text("Low voice", exact=True).click()
        page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
        page.locator("#text_in textarea").fill(TAGGED)
        preview = page.locator("#segment_preview")
        expect(preview).to_contain_text("happy", timeout=20000)
        expect(preview).to_contain_text("weight 0.60")
        page.locator("#generate_btn").click()
        href, audio_bytes = fetch(page, server, "#out_audio")
        result = page.locator("#out_segments")
        expect(result).to_contain_text("same as voice", timeout=20000)
        expect(result).to_contain_text("sad 0.80 (weight 0.60)")
        shown = result.inner_text()
        order = [shown.index(s) for s in ("It starts", "same as voice", "What wonderful", "happy 0.75", "But then", "sad 0.80")]
        assert order == sorted(order), shown
        bands = page.locator("#out_wave svg rect.segment")
        expect(bands).to_have_count(3)
        assert bands.nth(2).get_attribute("data-emotion").startswith("sad")

        # The SRT's last cue ends within 100 ms of the audio's end.
        _, srt = fetch(page, server, "#out_srt")
        cues = parse_srt(srt.decode("utf-8"))
        assert [c[0] for c in cues][0].startswith("It starts") and len(cues) == 3
        duration = sf.info(io.BytesIO(audio_bytes)).duration
        assert abs(cues[-1][2] - duration) < 0.1, (cues[-1], duration)
        expect(page.locator("#history_table")).to_contain_text("It starts quite calmly")
        page.screenshot(path=str(screenshot_path("screenshot-inline-tags.png")), full_page=True)
        page.close()
    finally:
        server.stop()


def test_second_life_reuse_history_and_dialogue(browser, data_dir):
    from playwright.sync_api import expect

    server = Server(data_dir)   # a restart on the same data folder
    try:
        page = open_page(browser, server)
        # History from the first life is still there, with replay and its files.
        history = page.locator("#history_table")
        expect(history).to_contain_text("It starts quite calmly", timeout=20000)
        choose(page, "#history_select", re.compile("It starts quite calmly"))
        fetch(page, server, "#history_audio", timeout=20000)
        expect(page.locator("#history_files")).to_contain_text(".srt")
        # Regenerate it with the same settings, then delete the copy with its files.
        page.locator("#history_regen_btn").click()
        expect(page.locator("#out_segments")).to_contain_text("sad 0.80 (weight 0.60)", timeout=120000)
        expect(history).to_contain_text(re.compile("It starts quite calmly.*It starts quite calmly", re.S))
        outputs = sorted((data_dir / "outputs").iterdir())
        assert len(outputs) == 2
        newest = max(outputs, key=lambda p: p.name)
        choose(page, "#history_select", re.compile(newest.name.split(".")[0][:15]))
        page.locator("#history_delete_btn").click()
        expect(page.locator("#history_info")).to_contain_text("Deleted", timeout=20000)
        assert not newest.exists() and not list((data_dir / "history").glob(newest.name.split(".")[0] + ".*"))

        # The saved voice is offered again and speaks.
        page.locator("#voice_pick").get_by_text("High voice", exact=True).click()
        page.locator('#voice_audio [data-testid="download-link"]').first.wait_for(state="attached", timeout=20000)
        # ... with its default emotion.
        expect(page.locator("#emo_happy input[type=number]")).to_have_value(re.compile(r"^0\.8"), timeout=10000)
        page.locator("#text_in textarea").fill("Back again after a restart.")
        page.locator("#out_format").get_by_text("FLAC", exact=True).click()
        page.locator("#generate_btn").click()
        expect(page.locator('#out_audio [data-testid="download-link"]').first).to_have_attribute(
            "href", re.compile(r"\.flac$"), timeout=120000)
        href, data = fetch(page, server, "#out_audio")
        assert href.endswith(".flac") and sf.info(io.BytesIO(data)).format == "FLAC"

        # A 4-line, 2-role dialogue: the zip has the 4 lines in order, each in its role's voice.
        page.locator("#tab_dialogue-button").click()
        page.locator("#dlg_script textarea").fill(
            "Ann: Did you hear the news today?\nBen: No, tell me everything now.\n"
            "Ann: [happy] We won the big prize!\nBen: That is simply wonderful news.")
        expect(page.locator("#dlg_roles_note")).to_contain_text("Ann, Ben", timeout=20000)
        assert unlabelled_controls(page, "#tab_dialogue") == []
        choose(page, "#dlg_role_0_voice", "Low voice")
        choose(page, "#dlg_role_1_voice", "High voice")
        page.locator("#dlg_generate_btn").click()
        _, zipped = fetch(page, server, "#dlg_zip", timeout=180000)
        with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
            names = archive.namelist()
            assert names == ["01_Ann.wav", "02_Ben.wav", "03_Ann.wav", "04_Ben.wav"]
            pitches = [median_f0(*sf.read(io.BytesIO(archive.read(n)), dtype="float32")) for n in names]
        assert max(pitches[0], pitches[2]) * 1.3 < min(pitches[1], pitches[3]), pitches
        lines = page.locator("#dlg_lines")
        expect(lines).to_contain_text("That is simply wonderful news.")
        shown = lines.inner_text()
        order = [shown.index(s) for s in ("Low voice", "Did you hear", "High voice", "tell me everything", "We won", "That is simply")]
        assert order == sorted(order), shown
        # Ben's emotion is "(the voice's default)": High voice's Happy.
        emotions = [b.get_attribute("data-emotion") for b in page.locator("#dlg_wave svg rect.segment").all()]
        assert [e.split(" ")[0] for e in emotions] == ["same", "happy", "happy", "happy"], emotions
        _, srt = fetch(page, server, "#dlg_srt")
        assert [c[0].split(":")[0] for c in parse_srt(srt.decode("utf-8"))] == ["Ann", "Ben", "Ann", "Ben"]
        page.screenshot(path=str(screenshot_path("screenshot-dialogue.png")), full_page=True)

        # The new pages follow the zh/en switch: tabs, role labels and table headers.
        page.locator("#lang_switch").get_by_text("中文").click()
        expect(page.locator("#tab_dialogue-button")).to_have_text("对话", timeout=10000)
        expect(page.locator("#dlg_role_0_voice")).to_contain_text("角色 1 的音色")
        expect(page.locator("#dlg_lines")).to_contain_text("台词")
        expect(page.locator("#dlg_lines")).to_contain_text("That is simply wonderful news.")  # the rows stay
        page.locator("#tab_synth-button").click()
        expect(page.locator("#history_table")).to_contain_text("类型")
        expect(page.locator("#history_table")).to_contain_text("Back again after a restart")
        page.close()
    finally:
        server.stop()
