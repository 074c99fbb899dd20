"""The studio page: `build_ui(get_synthesizer) -> gr.Blocks`, assembled from its rooms.

UI code only. Each tab or section is a room module with `layout(page)` (its widgets) and
`wire(page, demo)` (its events); its handlers are module-level functions taking the synthesizer:

    synthesize.py   the Synthesize tab (and regenerate), placing the rooms below
    emotion.py      its emotion section: modes, one-click (beside Generate) and user emotion presets
    audition.py     its emotion audition: the text in several emotions, take by take
    generation.py   its Advanced settings, one widget per GenerationParams field
    glossary.py     its custom term pronunciations
    status.py       the status banner and the segment preview
    history.py      its history of results
    library.py      the Voice library tab
    dialogue.py     the Dialogue tab
    projects.py     the Projects tab (long-form: audiobooks)
    dubbing.py      the Dubbing tab (subtitle-timed dubbing jobs)
    presets.py      the Saved presets tab
    errors.py       the one decorator that turns service errors into messages
    page.py         what the rooms share (Page, bind, event settings)

Synthesis runs through the Gradio queue one job at a time (concurrency id "engine"); light
events (status, preview, presets) bypass that limit so the page stays responsive while a job runs.
"""

from __future__ import annotations

from typing import Callable

import gradio as gr

from index_tts.service import Synthesizer
from index_tts.ui import dialogue, dubbing, library, presets, projects, synthesize
from index_tts.ui.page import LIGHT, Page
from index_tts.ui.status import chosen_status, preview, render_banner
from index_tts.ui.strings import LANGUAGES, t

__all__ = ["build_ui", "mount_ui", "render_banner"]

CSS = """
#status_banner .banner { padding: 10px 14px; border-radius: 8px; font-size: 15px; }
#status_banner .loading { background: #fff7e0; border: 1px solid #e8c15a; color: #5a4500; }
#status_banner .ready { background: #e9f7ee; border: 1px solid #7cc59a; color: #14532d; }
#status_banner .failed { background: #fdecec; border: 1px solid #e08b8b; color: #7f1d1d; }
#status_banner .quick { margin-top: 6px; font-size: 14px; }
#status_banner .bar { height: 6px; background: #f0e0b0; border-radius: 3px; margin-top: 6px; }
#status_banner .bar > div { height: 6px; background: #d9a400; border-radius: 3px; }
.emo-preset-row button { min-width: 90px; }
#emo_preset_row { gap: 6px; }
#emo_preset_row button { min-width: 0; flex: 0 0 auto; white-space: nowrap; padding: 4px 10px; }
"""

TABS = (("tab_synth", synthesize), ("tab_library", library), ("tab_dialogue", dialogue), ("tab_dubbing", dubbing),
        ("tab_projects", projects),
        ("tab_presets", presets))
# Tables take their headers from their value, so the language switch refills them: (room, widget, strings key).
TABLES = (("synth", "out_segments", "out_segments_headers"), ("history", "table", "history_headers"),
          ("dialogue", "lines", "dlg_lines_headers"), ("dubbing", "cues", "dub_cues_headers"))


def retitle(table_value, key, lang_value):
    """A table's rows under headers in `lang_value`."""
    headers = t(lang_value, key).split("|")
    rows = table_value.values.tolist() if hasattr(table_value, "values") else list(table_value or [])
    rows = [r for r in rows if len(r) == len(headers) and any(str(c).strip() for c in r)]
    return gr.update(value={"data": rows, "headers": headers}, headers=headers)


def wire_language(page: Page):
    translated = [c for c, _ in page.translatable]
    tables = [getattr(getattr(page, room), name) for room, name, _ in TABLES]

    def switch_language(synth: Synthesizer, lang_value, text_value, max_tokens_value, model_value, language_value, *table_values):
        updates = [gr.update(**make(lang_value)) for _, make in page.translatable]
        updates += [retitle(value, key, lang_value) for value, (_, _, key) in zip(table_values, TABLES)]
        updates.append(render_banner(chosen_status(synth, model_value), lang_value))
        rows, note = preview(synth, text_value, max_tokens_value, lang_value, model_value, language_value)
        return [*updates, retitle(rows, "segments_headers", lang_value), note]

    page.lang.change(page.bind(switch_language),
                     [page.lang, page.synth.text, page.generation.widgets["max_text_tokens_per_segment"], *page.model.inputs, *tables],
                     [*translated, *tables, page.banner, page.segments.table, page.segments.note], api_visibility="private", **LIGHT)


def build_ui(get_synthesizer: Callable[[], Synthesizer]) -> gr.Blocks:
    page = Page(get_synthesizer)
    with gr.Blocks(title="IndexTTS Studio", analytics_enabled=False) as demo:
        with gr.Row():
            page.tr(gr.Markdown(t("en", "title"), elem_id="title"), value="title")
            page.lang = gr.Radio(list(LANGUAGES), value="en", label=t("en", "lang_label"), elem_id="lang_switch", scale=0, min_width=220)
        page.banner = gr.HTML(render_banner(get_synthesizer().status(), "en"), elem_id="status_banner")
        page.timer = gr.Timer(1.0)
        with gr.Tabs() as page.tabs:
            for key, room in TABS:
                with page.tr(gr.Tab(t("en", key), id=key, elem_id=key), label=key) as tab:
                    setattr(page, key, tab)   # rooms may wire their tab's select event
                    room.layout(page)
        page.emotion_dropdowns = [page.library.emotion, *page.dialogue.role_emotions]
        for _, room in TABS:
            room.wire(page, demo)
        wire_language(page)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def mount_ui(app, get_synthesizer: Callable[[], Synthesizer], allowed_paths: list[str]):
    """Build the page and mount it at "/" of a FastAPI app (declare other routes first).

    allowed_paths: folders Gradio may serve files from (the data folder: outputs, presets).
    """
    return gr.mount_gradio_app(app, build_ui(get_synthesizer), path="/", allowed_paths=allowed_paths, css=CSS, footer_links=["api"])
