"""The Projects tab: its handlers called as a click would call them (quick voice, no browser), and
in a browser (Debian chromium): import, render with progress, export and download."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pytest

from index_tts.service import builtin_emotion_presets
from index_tts.service.audiobook import read_chapters
from index_tts.ui import projects
from index_tts.ui.creator import emotion_choices
from tests.http_server import write_voice
from tests.test_service import quick_synth  # noqa: F401  (a fixture)

BOOK = "# Morning\nThe sun came up. Birds sang.\n\n# Evening\n[sad] The sun went down.\n"


@pytest.fixture(scope="module")
def synth(quick_synth, tmp_path_factory):  # noqa: F811
    quick_synth.save_voice("narrator", str(write_voice(tmp_path_factory.mktemp("prj-ui") / "v.wav")))
    return quick_synth


def wait_done(synth, name: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        html, rows, timer = projects.poll(synth, name, "en")
        if not timer.active:
            return html
        time.sleep(0.1)
    raise AssertionError("the render did not end")


def test_the_projects_tab_imports_renders_edits_and_exports(synth):
    happy = next(v for _, v in emotion_choices(builtin_emotion_presets(), [], "en", "") if v.endswith(":happy"))
    listed, message = projects.create(synth, "ui book", None, BOOK, "narrator", happy, 3, "en")
    assert listed["value"] == "ui book" and "2 chapter" in message
    rows, html, chapters, voice, emotion, seed, summary, timer = projects.show_project(synth, "ui book", "en")
    assert [r[1] for r in rows] == ["Morning", "Evening"] and [r[4:] for r in rows] == [[0, 1], [0, 1]]
    assert voice["value"] == "narrator" and emotion["value"] == happy and seed == 3 and "ui book.md" in summary

    html, message, timer = projects.render(synth, "ui book", "en")
    assert timer.active and "Rendering" in html
    html = wait_done(synth, "ui book")
    assert "Done" in html and "2/2" in html
    assert projects.tick(synth, "ui book", "en")[3] == ""   # the "rendering…" hint goes when it ends

    title, text, chapter_voice, chapter_emotion = projects.pick_chapter(synth, "ui book", 1)
    assert (title, chapter_voice, chapter_emotion) == ("Evening", projects.PROJECT_DEFAULT, projects.PROJECT_DEFAULT)
    projects.save_chapter(synth, "ui book", 1, "Night", text + " Stars came out.", "narrator", projects.PROJECT_DEFAULT, "en")
    _, rows, _ = projects.poll(synth, "ui book", "en")
    assert rows[1][1:5] == ["Night", "narrator", "", 0]
    projects.render(synth, "ui book", "en")
    assert "2/2" in wait_done(synth, "ui book")

    files, book, message = projects.export(synth, "ui book", "wav", "en")
    assert [Path(f).name for f in files] == ["ui book.mp3", "ui book.srt", "01 Morning.wav", "02 Night.wav"]
    assert [c[0] for c in read_chapters(book)] == ["Morning", "Night"]


def test_the_tab_names_what_is_wrong(synth):
    with pytest.raises(gr.Error, match="name"):
        projects.create(synth, "../up", None, BOOK, "narrator", None, 0, "en")
    with pytest.raises(gr.Error, match="file: is empty"):
        projects.create(synth, "empty", None, "", "narrator", None, 0, "en")
    with pytest.raises(gr.Error, match="Pick or create a project"):
        projects.render(synth, "", "en")
    with pytest.raises(gr.Error, match="not rendering"):
        projects.pause(synth, "ui book" if "ui book" in synth.list_projects() else "x", "en")
    assert "empty" not in synth.list_projects()


# -- in a browser -----------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.slow
def test_the_projects_tab_in_the_browser(tmp_path):
    from playwright.sync_api import expect

    from tests.http_server import StudioServer
    from tests.screens import screenshot_path
    from tests.test_webui_e2e import CHROMIUM, CHROMIUM_ARGS

    server = StudioServer(tmp_path / "data")
    try:
        with server.client() as http, write_voice(tmp_path / "v.wav").open("rb") as f:
            assert http.post("/v1/voices", data={"name": "narrator"}, files={"file": ("v.wav", f)}).status_code == 201
        book = tmp_path / "tale.md"
        book.write_text(BOOK + "\n# Night\n" + " ".join(f"Star number {n} came out." for n in range(30)) + "\n")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto(server.url + "/")
            page.wait_for_selector("#generate_btn")
            page.locator("#tab_projects-button").click()
            try:
                page.locator("#prj_name input").wait_for(state="visible", timeout=20000)
            except Exception:
                page.screenshot(path=str(screenshot_path("projects-failed.png")), full_page=True)
                raise
            page.locator("#prj_name input").fill("tale")
            page.locator("#prj_upload input[type=file]").set_input_files(str(book))
            page.locator("#prj_voice input").click()
            page.get_by_role("option", name="narrator", exact=True).filter(visible=True).first.click()
            page.locator("#prj_create").click()
            expect(page.locator("#prj_message")).to_contain_text("with 3 chapter", timeout=30000)
            expect(page.locator("#prj_chapters")).to_contain_text("Night", timeout=30000)

            page.locator("#prj_render").click()
            expect(page.locator("#prj_progress")).to_contain_text("Rendering", timeout=30000)
            counts = page.locator("#prj_progress .prj-count")
            expect(page.locator("#prj_progress [data-state=done]")).to_be_attached(timeout=180000)
            assert counts.inner_text().split("/")[0] == counts.inner_text().split("/")[1]
            page.screenshot(path=str(screenshot_path("screenshot-projects.png")), full_page=True)

            from tests.test_creator_e2e import unlabelled_controls
            assert unlabelled_controls(page, "#tab_projects") == []

            page.locator("#prj_export").click()
            expect(page.locator("#prj_message")).to_contain_text("Exported 3 chapter file", timeout=60000)
            link = page.locator('#prj_files a[download]').first
            link.wait_for(state="attached", timeout=30000)
            href = link.get_attribute("href")
            response = page.request.get(href if href.startswith("http") else server.url + href)
            assert response.status == 200 and response.body()[:3] == b"ID3"   # the audiobook, tagged
            (tmp_path / "book.mp3").write_bytes(response.body())
            assert [c[0] for c in read_chapters(tmp_path / "book.mp3")] == ["Morning", "Evening", "Night"]
            browser.close()
    finally:
        server.stop()
