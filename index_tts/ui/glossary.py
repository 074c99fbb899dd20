"""The custom term pronunciations (glossary) section of the Synthesize tab."""

from __future__ import annotations

import gradio as gr

from index_tts.service import Synthesizer
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import LIGHT, Page
from index_tts.ui.strings import t


def glossary_rows(synth: Synthesizer, lang_value, message=""):
    rows = [list(row) for row in synth.list_glossary()]
    if synth.glossary_problem:
        problem = t(lang_value, "glossary_problem", problem=synth.glossary_problem)
        message = f"{message}\n\n{problem}" if message else problem
    return rows, message


@shows_errors
def add_term(synth: Synthesizer, term, zh=None, en=None, lang="en"):
    replaced = synth.add_glossary_term(term or "", zh, en)
    rows, message = glossary_rows(synth, lang, t(lang, "glossary_replaced" if replaced else "glossary_added", term=(term or "").strip()))
    return rows, message, "", "", ""


@shows_errors
def remove_term(synth: Synthesizer, term, lang="en"):
    term = (term or "").strip()
    if not term:
        raise gr.Error(t(lang, "glossary_none"), print_exception=False)
    synth.remove_glossary_term(term)
    rows, message = glossary_rows(synth, lang, t(lang, "glossary_removed", term=term))
    return rows, message, ""


def pick_term(rows, evt: gr.SelectData):
    """Clicking a row fills the boxes, so a term can be edited (Add) or removed."""
    try:
        row = rows.values.tolist()[evt.index[0]] if hasattr(rows, "values") else rows[evt.index[0]]
    except (IndexError, TypeError, KeyError):
        return gr.update(), gr.update(), gr.update()
    return row[0], row[1], row[2]


def layout(page: Page):
    tr = page.tr
    with tr(gr.Accordion(t("en", "glossary_section"), open=False, elem_id="glossary_section"), label="glossary_section"):
        use = tr(gr.Checkbox(True, label=t("en", "glossary_use"), info=t("en", "glossary_use_info"), elem_id="use_glossary"),
                 label="glossary_use", info="glossary_use_info")
        with gr.Row():
            term = tr(gr.Textbox(label=t("en", "glossary_term"), elem_id="glossary_term", max_lines=1), label="glossary_term")
            zh = tr(gr.Textbox(label=t("en", "glossary_zh"), placeholder=t("en", "glossary_zh_placeholder"), elem_id="glossary_zh",
                               max_lines=1), label="glossary_zh", placeholder="glossary_zh_placeholder")
            en = tr(gr.Textbox(label=t("en", "glossary_en"), placeholder=t("en", "glossary_en_placeholder"), elem_id="glossary_en",
                               max_lines=1), label="glossary_en", placeholder="glossary_en_placeholder")
        with gr.Row():
            add = tr(gr.Button(t("en", "glossary_add"), variant="primary", elem_id="glossary_add_btn", scale=0), value="glossary_add")
            remove = tr(gr.Button(t("en", "glossary_remove"), variant="stop", elem_id="glossary_remove_btn", scale=0),
                        value="glossary_remove")
        info = gr.Markdown("", elem_id="glossary_info")
        table = gr.Dataframe(headers=t("en", "glossary_headers").split("|"), datatype=["str", "str", "str"], interactive=False,
                             wrap=True, elem_id="glossary_table", max_height=240)
    page.room("glossary", use=use, term=term, zh=zh, en=en, add=add, remove=remove, info=info, table=table)


def wire(page: Page, demo: gr.Blocks):
    g = page.glossary
    g.add.click(page.bind(add_term), [g.term, g.zh, g.en, page.lang], [g.table, g.info, g.term, g.zh, g.en], api_name="add_term", **LIGHT)
    g.remove.click(page.bind(remove_term), [g.term, page.lang], [g.table, g.info, g.term], api_name="remove_term", **LIGHT)
    g.table.select(pick_term, g.table, [g.term, g.zh, g.en], api_visibility="private", **LIGHT)
    demo.load(page.bind(glossary_rows), [page.lang], [g.table, g.info], api_visibility="private", **LIGHT)
