"""The status banner and the live segment preview of the text being typed."""

from __future__ import annotations

import html

import gradio as gr

from index_tts.service import NotReady, Status, Synthesizer, ValidationError
from index_tts.ui.page import LIGHT, Page
from index_tts.ui.strings import t


def render_banner(status: Status, lang: str) -> str:
    if status.state == "loading":
        engine = t(lang, "engine_pending_quick") if status.is_quick_voice else t(lang, "engine_pending_full")
        pct = int(status.progress * 100)
        body = t(lang, "banner_loading", engine=engine, pct=pct, message=html.escape(status.message))
        body += f'<div class="bar"><div style="width:{pct}%"></div></div>'
    elif status.state == "ready":
        body = t(lang, "banner_ready", engine=html.escape(status.engine), version=html.escape(status.version), device=html.escape(status.device))
    else:
        body = t(lang, "banner_failed", error=html.escape(status.error))
        if status.help and not status.is_quick_voice:
            body += f'<div class="quick">{html.escape(status.help)}</div>'
    if status.weights_revision and not status.is_quick_voice:
        body += f'<div class="quick">{t(lang, "banner_weights", revision=html.escape(status.weights_revision))}</div>'
    for warning in status.model_store.get("warnings", []):  # e.g. the store is on a network mount
        body += f'<div class="quick">{t(lang, "banner_store_warning", warning=html.escape(warning))}</div>'
    if status.is_quick_voice:
        body += f'<div class="quick">{t(lang, "banner_quick", help=html.escape(status.help))}</div>'
    return f'<div class="banner {status.state}" data-state="{status.state}">{body}</div>'


def preview(synth: Synthesizer, text_value, max_tokens_value, lang_value, model_value=None, language_value="auto"):
    """The segment table rows and a note for the text as typed, split by the chosen model in the
    chosen language (no error toasts while typing)."""
    try:
        segs = synth.preview_segments(text_value or "", max_tokens_value, model_value or None, language_value or "auto")
    except NotReady as e:
        key = "segments_failed" if e.state == "failed" else "segments_loading"
        return [], t(lang_value, key, pct=int(e.progress * 100))
    except ValidationError as e:
        return [], str(e)
    rows = [[i + 1, s.text, s.n_tokens, s.emotion or t(lang_value, "segment_emotion_default"), s.pause_after_ms]
            for i, s in enumerate(segs)]
    note = t(lang_value, "segments_count", n=len(rows), max=int(max_tokens_value)) if rows else ""
    return rows, note


def chosen_status(synth: Synthesizer, model_value) -> Status:
    """The status of the model the switch shows (the default's if it names none the studio serves)."""
    try:
        return synth.status(model_value or None)
    except ValidationError:
        return synth.status()


def refresh_status(synth: Synthesizer, text_value, max_tokens_value, lang_value, model_value=None, language_value="auto"):
    """The banner (of the chosen model: a model loaded on demand starts loading when chosen), the
    poll timer and the preview."""
    rows, note = preview(synth, text_value, max_tokens_value, lang_value, model_value, language_value)
    status = chosen_status(synth, model_value)
    # Poll only while loading; a fresh page load starts the timer again.
    return render_banner(status, lang_value), gr.Timer(active=status.state == "loading"), rows, note


def layout(page: Page):
    with page.tr(gr.Accordion(t("en", "segments_label"), open=True, elem_id="segments_section"), label="segments_label"):
        note = gr.Markdown("", elem_id="segments_note")
        table = gr.Dataframe(headers=t("en", "segments_headers").split("|"), datatype=["number", "str", "number", "str", "number"],
                             interactive=False, wrap=True, elem_id="segment_preview", max_height=300)
    page.room("segments", note=note, table=table)


def wire(page: Page, demo: gr.Blocks):
    s, max_tokens = page.synth, page.generation.widgets["max_text_tokens_per_segment"]
    inputs = [s.text, max_tokens, page.lang, *page.model.inputs]
    outputs = [page.banner, page.timer, page.segments.table, page.segments.note]
    page.timer.tick(page.bind(refresh_status), inputs, outputs, api_visibility="private", **LIGHT)
    demo.load(page.bind(refresh_status), inputs, outputs, api_name="status", **LIGHT)
    for trigger in (s.text.change, max_tokens.change):
        trigger(page.bind(preview), inputs, [page.segments.table, page.segments.note], api_visibility="private", **LIGHT)
    for trigger in (page.model.switch.change, page.model.language.change):
        trigger(page.bind(refresh_status), inputs, outputs, api_visibility="private", **LIGHT)
