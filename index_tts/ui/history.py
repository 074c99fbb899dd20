"""The history section of the Synthesize tab: every result kept in the data folder, played,
downloaded or deleted (voicing one again is Synthesize's `regenerate`)."""

from __future__ import annotations

import gradio as gr

from index_tts.service import Synthesizer
from index_tts.ui.creator import history_rows
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import LIGHT, Page
from index_tts.ui.strings import t

HISTORY_LIMIT = 100


def kind_label(lang_value):
    return lambda kind: t(lang_value, f"kind_{kind}") if kind in ("speech", "dialogue") else kind


def history_view(synth: Synthesizer, lang_value, selected=None, message=""):
    """The history table, the entry choices and a message, read from the data folder."""
    records = synth.list_history(HISTORY_LIMIT)
    choices = [(f"{r['id'][:15]} · {r.get('title', '')[:40]}", r["id"]) for r in records]
    ids = [r["id"] for r in records]
    return history_rows(records, kind_label(lang_value)), gr.update(choices=choices, value=selected if selected in ids else None), message


@shows_errors
def show_entry(synth: Synthesizer, entry_id, lang_value):
    """The entry's audio and its files (audio, subtitles, per-line zip)."""
    if not entry_id:
        return None, [], ""
    files = [str(p) for p in synth.history_files(entry_id)]
    return files[0], files, ""


@shows_errors
def delete_entry(synth: Synthesizer, entry_id, lang_value):
    if not entry_id:
        raise gr.Error(t(lang_value, "history_none"), print_exception=False)
    synth.delete_history(entry_id)
    return (*history_view(synth, lang_value, None, t(lang_value, "history_deleted", id=entry_id)), None, [])


def layout(page: Page):
    tr = page.tr
    with tr(gr.Accordion(t("en", "history_section"), open=True, elem_id="history_section"), label="history_section"):
        table = gr.Dataframe(headers=t("en", "history_headers").split("|"), interactive=False, wrap=True, elem_id="history_table",
                             max_height=280)
        with gr.Row():
            select = tr(gr.Dropdown([], label=t("en", "history_select"), elem_id="history_select", scale=2), label="history_select")
            regen = tr(gr.Button(t("en", "history_regen"), elem_id="history_regen_btn", scale=0), value="history_regen")
            delete = tr(gr.Button(t("en", "history_delete"), variant="stop", elem_id="history_delete_btn", scale=0), value="history_delete")
            refresh = tr(gr.Button(t("en", "history_refresh"), elem_id="history_refresh_btn", scale=0), value="history_refresh")
        with gr.Row():
            audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "history_audio"), elem_id="history_audio",
                                buttons=["download"]), label="history_audio")
            files = tr(gr.File(file_count="multiple", interactive=False, label=t("en", "history_files"), elem_id="history_files"),
                       label="history_files")
        info = gr.Markdown("", elem_id="history_info")
    page.room("history", table=table, select=select, regen=regen, delete=delete, refresh=refresh, audio=audio, files=files, info=info)


def wire(page: Page, demo: gr.Blocks):
    h = page.history
    h.select.change(page.bind(show_entry), [h.select, page.lang], [h.audio, h.files, h.info], api_visibility="private", **LIGHT)
    h.delete.click(page.bind(delete_entry), [h.select, page.lang], [h.table, h.select, h.info, h.audio, h.files],
                   api_name="delete_history", **LIGHT)
    h.refresh.click(page.bind(history_view), [page.lang, h.select], [h.table, h.select, h.info], api_visibility="private", **LIGHT)
    demo.load(page.bind(history_view), [page.lang], [h.table, h.select, h.info], api_visibility="private", **LIGHT)
