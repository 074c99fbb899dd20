"""The studio page: `build_ui(get_synthesizer) -> gr.Blocks`.

UI code only. Every handler is a small function that turns widget values into a service call
and the service's errors (ValidationError, NotReady) into `gr.Error`. Synthesis runs through the
Gradio queue one job at a time (concurrency id "engine"); light events (status, preview,
presets) bypass that limit so the page stays responsive while a job runs.
"""

from __future__ import annotations

import html
import logging
import math
from datetime import datetime
from typing import Callable

import gradio as gr

from index_tts.emotion import DEFAULT_WEIGHT, EMOTION_MODES, EMOTIONS, EmotionSpec, builtin_presets, normalize_webui_vector
from index_tts.engines.base import GenerationParams
from index_tts.service import RoleSetting, compose, compose_from_history, parse_script, roles_of
from index_tts.service import Busy, NotReady, Status, SynthesisRequest, Synthesizer, TimedOut, TimedSegment, ValidationError
from index_tts.storage import atomic_write_bytes
from index_tts.ui.creator import (SAME_AS_VOICE, VOICE_DEFAULT, choice_label, emotion_choices, emotion_from_choice,
                                  history_rows, preset_widget_values, waveform_svg)
from index_tts.ui.strings import LANGUAGES, emotion_label, t

log = logging.getLogger(__name__)

DEFAULTS = GenerationParams()
HISTORY_LIMIT = 100
OUTPUT_FORMATS = [("WAV", "wav"), ("MP3", "mp3"), ("FLAC", "flac"), ("OGG", "ogg")]
MAX_UI_ROLES = 6

CSS = """
#status_banner .banner { padding: 10px 14px; border-radius: 8px; font-size: 15px; }
#status_banner .loading { background: #fff7e0; border: 1px solid #e8c15a; color: #5a4500; }
#status_banner .ready { background: #e9f7ee; border: 1px solid #7cc59a; color: #14532d; }
#status_banner .failed { background: #fdecec; border: 1px solid #e08b8b; color: #7f1d1d; }
#status_banner .quick { margin-top: 6px; font-size: 14px; }
#status_banner .bar { height: 6px; background: #f0e0b0; border-radius: 3px; margin-top: 6px; }
#status_banner .bar > div { height: 6px; background: #d9a400; border-radius: 3px; }
.emo-preset-row button { min-width: 90px; }
"""

# (text, emotion mode, weight, 8 slider values, emotion description) - filled by a click.
EXAMPLES = [
    ["Welcome to IndexTTS Studio. Give me any voice and I will read your text in it.", "same_as_voice", DEFAULT_WEIGHT, [0.0] * 8, ""],
    ["I can't believe you did that again! How many times do I have to tell you?", "vector", 0.8, [0, 0.8, 0, 0, 0.2, 0, 0, 0], ""],
    ["我们终于到了海边，阳光和海风都刚刚好，真是太开心了！", "vector", 0.7, [0.7, 0, 0, 0, 0, 0, 0.3, 0], ""],
    ["He looked at the empty chair for a long time, and then he quietly closed the door.", "text", 0.6, [0.0] * 8, "quiet, heavy-hearted sadness"],
    ["别出声……你听到了吗？门外好像有人。", "vector", 0.75, [0, 0, 0, 0.8, 0, 0, 0.2, 0], ""],
]


# ---------------------------------------------------------------------------------------------
# pure helpers (no widgets): status banner, request building


def plain(message: str) -> str:
    """A strings entry without its Markdown emphasis, for error toasts (which show text as is)."""
    return message.replace("**", "")


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


def _whole(value, name: str) -> int:
    """Sliders and number boxes send floats; integer settings must be whole."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"generation.{name}", f"generation.{name} must be a number, got {value!r}")
    return int(round(value))


def build_generation(do_sample, temperature, top_p, top_k, num_beams, repetition_penalty, length_penalty,
                     max_mel_tokens, max_tokens_per_segment, interval_silence_ms, seed) -> GenerationParams:
    if seed is None or (isinstance(seed, float) and math.isnan(seed)) or seed == "" or (isinstance(seed, (int, float)) and seed < 0):
        seed_value = None
    else:
        seed_value = _whole(seed, "seed")
    return GenerationParams(
        do_sample=bool(do_sample),
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=_whole(top_k, "top_k"),
        num_beams=_whole(num_beams, "num_beams"),
        repetition_penalty=float(repetition_penalty),
        length_penalty=float(length_penalty),
        max_mel_tokens=_whole(max_mel_tokens, "max_mel_tokens"),
        max_text_tokens_per_segment=_whole(max_tokens_per_segment, "max_text_tokens_per_segment"),
        interval_silence_ms=_whole(interval_silence_ms, "interval_silence_ms"),
        seed=seed_value,
    )


def build_emotion(mode, weight, use_random, sliders, emo_text) -> EmotionSpec:
    """What the widgets mean. In slider mode the upstream WebUI rule (per-emotion bias, total
    capped at 0.8) is applied here, as upstream does in its UI layer."""
    vector = None
    if mode == "vector":
        values = [float(v or 0.0) for v in sliders]
        vector = normalize_webui_vector(values)
    return EmotionSpec(
        mode=mode,
        weight=float(weight) if weight is not None else DEFAULT_WEIGHT,
        vector=vector,
        text=emo_text or "",
        use_random=bool(use_random),
    )


# ---------------------------------------------------------------------------------------------
# the page


def build_ui(get_synthesizer: Callable[[], Synthesizer]) -> gr.Blocks:
    presets = builtin_presets()
    translatable: list[tuple[gr.components.Component, Callable[[str], dict]]] = []

    def tr(component, **kinds):
        """Register a component whose texts follow the language switch; kinds map an update
        argument (label, value, info, placeholder) to a strings key."""
        translatable.append((component, lambda lang: {arg: t(lang, key) for arg, key in kinds.items()}))
        return component

    def mode_choices(lang: str) -> list[tuple[str, str]]:
        return [(t(lang, f"mode_{m}"), m) for m in EMOTION_MODES]

    with gr.Blocks(title="IndexTTS Studio", analytics_enabled=False) as demo:
        with gr.Row():
            title = tr(gr.Markdown(t("en", "title"), elem_id="title"), value="title")
            lang = gr.Radio(list(LANGUAGES), value="en", label=t("en", "lang_label"), elem_id="lang_switch", scale=0, min_width=220)
        banner = gr.HTML(render_banner(get_synthesizer().status(), "en"), elem_id="status_banner")
        timer = gr.Timer(1.0)

        with gr.Tabs() as tabs:
            with gr.Tab(t("en", "tab_synth"), id="tab_synth", elem_id="tab_synth") as tab_synth:
                with gr.Row():
                    with gr.Column(scale=1):
                        voice = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "voice_label"),
                                            elem_id="voice_audio", buttons=["download"]), label="voice_label")
                        voice_pick = tr(gr.Radio([], label=t("en", "voice_pick"), elem_id="voice_pick"), label="voice_pick")
                    with gr.Column(scale=2):
                        text = tr(gr.Textbox(lines=5, max_lines=20, label=t("en", "text_label"), placeholder=t("en", "text_placeholder"),
                                             elem_id="text_in"), label="text_label", placeholder="text_placeholder")
                        tags_help = tr(gr.Markdown(t("en", "tags_help"), elem_id="tags_help"), value="tags_help")
                        with gr.Row():
                            out_format = tr(gr.Radio(OUTPUT_FORMATS, value="wav", label=t("en", "out_format"), elem_id="out_format",
                                                     scale=2), label="out_format")
                            generate = tr(gr.Button(t("en", "generate"), variant="primary", elem_id="generate_btn", scale=1),
                                          value="generate")
                        output = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "output_label"), elem_id="out_audio",
                                             buttons=["download"]), label="output_label")
                        output_info = gr.Markdown("", elem_id="out_info")
                        out_wave = gr.HTML("", elem_id="out_wave")
                        out_srt = tr(gr.File(label=t("en", "out_srt"), interactive=False, elem_id="out_srt"), label="out_srt")
                        with tr(gr.Accordion(t("en", "out_segments_label"), open=True, elem_id="out_segments_section"),
                                label="out_segments_label"):
                            out_segments = gr.Dataframe(headers=t("en", "out_segments_headers").split("|"),
                                                        datatype=["number", "str", "number", "number", "str"], interactive=False,
                                                        wrap=True, elem_id="out_segments", max_height=300)

                with tr(gr.Accordion(t("en", "emo_section"), open=True, elem_id="emo_section"), label="emo_section"):
                    emo_mode = gr.Radio(mode_choices("en"), value="same_as_voice", label=t("en", "emo_mode_label"), elem_id="emo_mode")
                    emo_presets_title = tr(gr.Markdown(t("en", "emo_presets_label"), elem_id="emo_presets_label"), value="emo_presets_label")
                    preset_buttons = []
                    with gr.Row(elem_classes="emo-preset-row"):
                        for p in presets:
                            preset_buttons.append(gr.Button(f"{p['en']} · {p['zh']}", size="sm", elem_id=f"emo_preset_{p['id']}"))
                    emo_user_title = tr(gr.Markdown(t("en", "emo_user_label"), elem_id="emo_user_label"), value="emo_user_label")
                    user_presets = gr.State([])
                    with gr.Row(elem_classes="emo-preset-row", elem_id="emo_user_row"):
                        @gr.render(inputs=[user_presets, lang])
                        def render_user_presets(items, lang_value):
                            # Real <button>s: reachable with Tab, pressed with Enter or Space.
                            if not items:
                                gr.Markdown(t(lang_value or "en", "emo_user_none"), elem_id="emo_user_empty")
                            for i, item in enumerate(items or []):
                                button = gr.Button(item["name"], size="sm", elem_id=f"emo_user_{i}", scale=0, min_width=90)
                                button.click(lambda _i=item: [_i["mode"], _i["weight"], *_i["sliders"], _i.get("text", "")], None,
                                             [emo_mode, emo_weight, *sliders, emo_text], api_visibility="private", **light)
                    with gr.Row():
                        emo_user_name = tr(gr.Textbox(label=t("en", "emo_user_name"), elem_id="emo_user_name", max_lines=1, scale=2),
                                           label="emo_user_name")
                        emo_user_save = tr(gr.Button(t("en", "emo_user_save"), elem_id="emo_user_save_btn", scale=0), value="emo_user_save")
                        emo_user_delete = tr(gr.Button(t("en", "emo_user_delete"), variant="stop", elem_id="emo_user_delete_btn",
                                                       scale=0), value="emo_user_delete")
                    emo_user_info = gr.Markdown("", elem_id="emo_user_info")
                    with gr.Column(visible=False) as audio_box:
                        emo_audio = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "emo_audio_label"),
                                                elem_id="emo_audio"), label="emo_audio_label")
                    emo_weight = tr(gr.Slider(0.0, 1.0, value=DEFAULT_WEIGHT, step=0.01, label=t("en", "emo_weight_label"),
                                              elem_id="emo_weight", visible=False), label="emo_weight_label")
                    emo_random = tr(gr.Checkbox(False, label=t("en", "emo_random_label"), info=t("en", "emo_random_info"),
                                                elem_id="emo_random", visible=False), label="emo_random_label", info="emo_random_info")
                    with gr.Column(visible=False) as vector_box:
                        vector_note = tr(gr.Markdown(t("en", "vector_note"), elem_id="vector_note"), value="vector_note")
                        sliders = []
                        with gr.Row():
                            for e in EMOTIONS:
                                sliders.append(gr.Slider(0.0, 1.0, value=0.0, step=0.05, label=emotion_label("en", e),
                                                         elem_id=f"emo_{e}", min_width=120))
                    with gr.Column(visible=False) as text_box:
                        emo_text = tr(gr.Textbox(label=t("en", "emo_text_label"), placeholder=t("en", "emo_text_placeholder"),
                                                 elem_id="emo_text"), label="emo_text_label", placeholder="emo_text_placeholder")

                with tr(gr.Accordion(t("en", "advanced"), open=False, elem_id="advanced"), label="advanced"):
                    with gr.Row():
                        do_sample = gr.Checkbox(DEFAULTS.do_sample, label="do_sample", elem_id="do_sample")
                        temperature = gr.Slider(0.1, 2.0, value=DEFAULTS.temperature, step=0.05, label="temperature", elem_id="temperature")
                        top_p = gr.Slider(0.0, 1.0, value=DEFAULTS.top_p, step=0.01, label="top_p", elem_id="top_p")
                        top_k = tr(gr.Slider(0, 100, value=DEFAULTS.top_k, step=1, label=t("en", "top_k"), elem_id="top_k"), label="top_k")
                    with gr.Row():
                        num_beams = gr.Slider(1, 10, value=DEFAULTS.num_beams, step=1, label="num_beams", elem_id="num_beams")
                        repetition_penalty = gr.Slider(0.1, 20.0, value=DEFAULTS.repetition_penalty, step=0.1,
                                                       label="repetition_penalty", elem_id="repetition_penalty")
                        length_penalty = gr.Slider(-2.0, 2.0, value=DEFAULTS.length_penalty, step=0.1, label="length_penalty",
                                                   elem_id="length_penalty")
                        max_mel_tokens = tr(gr.Slider(50, 1815, value=DEFAULTS.max_mel_tokens, step=10, label=t("en", "max_mel_tokens"),
                                                      elem_id="max_mel_tokens"), label="max_mel_tokens")
                    with gr.Row():
                        max_tokens = tr(gr.Slider(20, 600, value=DEFAULTS.max_text_tokens_per_segment, step=2,
                                                  label=t("en", "max_tokens_segment"), elem_id="max_tokens_per_segment"),
                                        label="max_tokens_segment")
                        interval_silence = tr(gr.Slider(0, 5000, value=DEFAULTS.interval_silence_ms, step=10,
                                                        label=t("en", "interval_silence"), elem_id="interval_silence"), label="interval_silence")
                        seed = tr(gr.Number(None, precision=0, label=t("en", "seed"), elem_id="seed"), label="seed")

                with tr(gr.Accordion(t("en", "glossary_section"), open=False, elem_id="glossary_section"), label="glossary_section"):
                    use_glossary = tr(gr.Checkbox(True, label=t("en", "glossary_use"), info=t("en", "glossary_use_info"),
                                                  elem_id="use_glossary"), label="glossary_use", info="glossary_use_info")
                    with gr.Row():
                        glossary_term = tr(gr.Textbox(label=t("en", "glossary_term"), elem_id="glossary_term", max_lines=1),
                                           label="glossary_term")
                        glossary_zh = tr(gr.Textbox(label=t("en", "glossary_zh"), placeholder=t("en", "glossary_zh_placeholder"),
                                                    elem_id="glossary_zh", max_lines=1), label="glossary_zh", placeholder="glossary_zh_placeholder")
                        glossary_en = tr(gr.Textbox(label=t("en", "glossary_en"), placeholder=t("en", "glossary_en_placeholder"),
                                                    elem_id="glossary_en", max_lines=1), label="glossary_en", placeholder="glossary_en_placeholder")
                    with gr.Row():
                        glossary_add = tr(gr.Button(t("en", "glossary_add"), variant="primary", elem_id="glossary_add_btn", scale=0),
                                          value="glossary_add")
                        glossary_remove = tr(gr.Button(t("en", "glossary_remove"), variant="stop", elem_id="glossary_remove_btn", scale=0),
                                             value="glossary_remove")
                    glossary_info = gr.Markdown("", elem_id="glossary_info")
                    glossary_table = gr.Dataframe(headers=t("en", "glossary_headers").split("|"), datatype=["str", "str", "str"],
                                                  interactive=False, wrap=True, elem_id="glossary_table", max_height=240)

                with tr(gr.Accordion(t("en", "segments_label"), open=True, elem_id="segments_section"), label="segments_label"):
                    segments_note = gr.Markdown("", elem_id="segments_note")
                    segments = gr.Dataframe(headers=t("en", "segments_headers").split("|"),
                                            datatype=["number", "str", "number", "str", "number"],
                                            interactive=False, wrap=True, elem_id="segment_preview", max_height=300)

                examples = gr.Examples(
                    examples=[[txt, mode, w, *vec, et] for txt, mode, w, vec, et in EXAMPLES],
                    inputs=[text, emo_mode, emo_weight, *sliders, emo_text],
                    label=t("en", "examples_label"),
                    elem_id="examples",
                    cache_examples=False,
                )

                with tr(gr.Accordion(t("en", "history_section"), open=True, elem_id="history_section"), label="history_section"):
                    history_table = gr.Dataframe(headers=t("en", "history_headers").split("|"), interactive=False, wrap=True,
                                                 elem_id="history_table", max_height=280)
                    with gr.Row():
                        history_select = tr(gr.Dropdown([], label=t("en", "history_select"), elem_id="history_select", scale=2),
                                            label="history_select")
                        history_regen = tr(gr.Button(t("en", "history_regen"), elem_id="history_regen_btn", scale=0),
                                           value="history_regen")
                        history_delete = tr(gr.Button(t("en", "history_delete"), variant="stop", elem_id="history_delete_btn",
                                                      scale=0), value="history_delete")
                        history_refresh = tr(gr.Button(t("en", "history_refresh"), elem_id="history_refresh_btn", scale=0),
                                             value="history_refresh")
                    with gr.Row():
                        history_audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "history_audio"),
                                                    elem_id="history_audio", buttons=["download"]), label="history_audio")
                        history_files = tr(gr.File(file_count="multiple", interactive=False, label=t("en", "history_files"),
                                                   elem_id="history_files"), label="history_files")
                    history_info = gr.Markdown("", elem_id="history_info")

            with gr.Tab(t("en", "tab_library"), id="tab_library", elem_id="tab_library") as tab_library:
                with gr.Row():
                    with gr.Column(scale=1):
                        lib_voices = tr(gr.Radio([], label=t("en", "lib_voices"), elem_id="lib_voices"), label="lib_voices")
                    with gr.Column(scale=2):
                        # Autoplay: one click on a name in the list plays that voice.
                        lib_audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "lib_audio"), elem_id="lib_audio",
                                                buttons=["download"], autoplay=True), label="lib_audio")
                        lib_details = gr.Markdown("", elem_id="lib_details")
                        lib_use = tr(gr.Button(t("en", "lib_use"), variant="primary", elem_id="lib_use_btn"), value="lib_use")
                lib_info = gr.Markdown("", elem_id="lib_info")
                with tr(gr.Accordion(t("en", "lib_new_section"), open=True, elem_id="lib_new_section"), label="lib_new_section"):
                    with gr.Row():
                        lib_new_audio = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "lib_new_audio"),
                                                    elem_id="lib_new_audio"), label="lib_new_audio")
                        with gr.Column():
                            lib_name = tr(gr.Textbox(label=t("en", "lib_name"), elem_id="lib_name", max_lines=1), label="lib_name")
                            lib_tags = tr(gr.Textbox(label=t("en", "lib_tags"), elem_id="lib_tags", max_lines=1), label="lib_tags")
                            lib_note = tr(gr.Textbox(label=t("en", "lib_note"), elem_id="lib_note", lines=2), label="lib_note")
                            lib_emotion = gr.Dropdown(emotion_choices(presets, [], "en", t("en", "emo_choice_same")), value=SAME_AS_VOICE,
                                                      label=t("en", "lib_emotion"), elem_id="lib_emotion")
                            lib_overwrite = tr(gr.Checkbox(False, label=t("en", "lib_overwrite"), elem_id="lib_overwrite"),
                                               label="lib_overwrite")
                            lib_save = tr(gr.Button(t("en", "lib_save"), variant="primary", elem_id="lib_save_btn"), value="lib_save")
                with tr(gr.Accordion(t("en", "lib_manage_section"), open=False, elem_id="lib_manage_section"),
                        label="lib_manage_section"):
                    with gr.Row():
                        lib_rename_to = tr(gr.Textbox(label=t("en", "lib_rename_to"), elem_id="lib_rename_to", max_lines=1, scale=2),
                                           label="lib_rename_to")
                        lib_rename = tr(gr.Button(t("en", "lib_rename"), elem_id="lib_rename_btn", scale=0), value="lib_rename")
                        lib_delete = tr(gr.Button(t("en", "lib_delete"), variant="stop", elem_id="lib_delete_btn", scale=0),
                                        value="lib_delete")
                    with gr.Row():
                        lib_export = tr(gr.Button(t("en", "lib_export"), elem_id="lib_export_btn", scale=0), value="lib_export")
                        lib_export_file = tr(gr.File(label=t("en", "lib_export_file"), interactive=False, elem_id="lib_export_file"),
                                             label="lib_export_file")
                    with gr.Row():
                        lib_import_file = tr(gr.File(label=t("en", "lib_import_file"), file_types=[".zip"], type="filepath",
                                                     elem_id="lib_import_file"), label="lib_import_file")
                        with gr.Column():
                            lib_import_overwrite = tr(gr.Checkbox(False, label=t("en", "lib_import_overwrite"),
                                                                  elem_id="lib_import_overwrite"), label="lib_import_overwrite")
                            lib_import = tr(gr.Button(t("en", "lib_import"), elem_id="lib_import_btn"), value="lib_import")

            with gr.Tab(t("en", "tab_dialogue"), id="tab_dialogue", elem_id="tab_dialogue") as tab_dialogue:
                with gr.Row():
                    with gr.Column(scale=3):
                        dlg_script = tr(gr.Textbox(lines=8, max_lines=40, label=t("en", "dlg_script"),
                                                   placeholder=t("en", "dlg_script_placeholder"), elem_id="dlg_script"),
                                        label="dlg_script", placeholder="dlg_script_placeholder")
                    with gr.Column(scale=2):
                        dlg_roles_title = tr(gr.Markdown(t("en", "dlg_roles_label"), elem_id="dlg_roles_label"), value="dlg_roles_label")
                        dlg_role_rows = []
                        for n in range(MAX_UI_ROLES):
                            with gr.Row(visible=False) as row:
                                role_name = gr.Textbox(label=t("en", "dlg_role", n=n + 1), interactive=False,
                                                       elem_id=f"dlg_role_{n}_name", min_width=100)
                                role_voice = gr.Dropdown([], label=t("en", "dlg_role_voice", n=n + 1), elem_id=f"dlg_role_{n}_voice",
                                                         min_width=140)
                                role_emotion = gr.Dropdown(emotion_choices(presets, [], "en", t("en", "emo_choice_same"),
                                                                           t("en", "emo_choice_voice_default")),
                                                           value=VOICE_DEFAULT, label=t("en", "dlg_role_emotion", n=n + 1),
                                                           elem_id=f"dlg_role_{n}_emotion", min_width=140)
                            dlg_role_rows.append((row, role_name, role_voice, role_emotion))
                        dlg_roles_note = gr.Markdown("", elem_id="dlg_roles_note")
                with gr.Row():
                    dlg_pause = tr(gr.Slider(0, 3000, value=400, step=50, label=t("en", "dlg_pause"), elem_id="dlg_pause"),
                                   label="dlg_pause")
                    dlg_format = tr(gr.Radio(OUTPUT_FORMATS, value="wav", label=t("en", "out_format"), elem_id="dlg_format"),
                                    label="out_format")
                    dlg_generate = tr(gr.Button(t("en", "dlg_generate"), variant="primary", elem_id="dlg_generate_btn"),
                                      value="dlg_generate")
                dlg_audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "dlg_audio"), elem_id="dlg_audio",
                                        buttons=["download"]), label="dlg_audio")
                dlg_info = gr.Markdown("", elem_id="dlg_info")
                dlg_wave = gr.HTML("", elem_id="dlg_wave")
                with gr.Row():
                    dlg_zip = tr(gr.File(label=t("en", "dlg_zip"), interactive=False, elem_id="dlg_zip"), label="dlg_zip")
                    dlg_srt = tr(gr.File(label=t("en", "dlg_srt"), interactive=False, elem_id="dlg_srt"), label="dlg_srt")
                dlg_lines = gr.Dataframe(headers=t("en", "dlg_lines_headers").split("|"), interactive=False, wrap=True,
                                         elem_id="dlg_lines", max_height=300)

            with gr.Tab(t("en", "tab_presets"), id="tab_presets", elem_id="tab_presets") as tab_presets:
                presets_title = tr(gr.Markdown(t("en", "presets_section"), elem_id="presets_title"), value="presets_section")
                with gr.Row():
                    preset_select = tr(gr.Dropdown([], label=t("en", "preset_select"), elem_id="preset_select", scale=2),
                                       label="preset_select")
                    preset_load = tr(gr.Button(t("en", "preset_load"), elem_id="preset_load_btn", scale=0), value="preset_load")
                    preset_delete = tr(gr.Button(t("en", "preset_delete"), variant="stop", elem_id="preset_delete_btn", scale=0),
                                       value="preset_delete")
                    preset_refresh = tr(gr.Button(t("en", "preset_refresh"), elem_id="preset_refresh_btn", scale=0), value="preset_refresh")
                with gr.Row():
                    preset_name = tr(gr.Textbox(label=t("en", "preset_name"), elem_id="preset_name", scale=2), label="preset_name")
                    preset_save = tr(gr.Button(t("en", "preset_save"), variant="primary", elem_id="preset_save_btn", scale=0),
                                     value="preset_save")
                preset_info = gr.Markdown("", elem_id="preset_info")

        # The order of these lists is the order of handler arguments and of preset fields.
        generation_inputs = [do_sample, temperature, top_p, top_k, num_beams, repetition_penalty, length_penalty,
                             max_mel_tokens, max_tokens, interval_silence, seed]
        generation_names = ["do_sample", "temperature", "top_p", "top_k", "num_beams", "repetition_penalty", "length_penalty",
                            "max_mel_tokens", "max_text_tokens_per_segment", "interval_silence_ms", "seed"]

        # -- status banner and segment preview -----------------------------------------------

        def preview(text_value, max_tokens_value, lang_value):
            synth = get_synthesizer()
            try:
                segs = synth.preview_segments(text_value or "", max_tokens_value)
            except NotReady as e:
                key = "segments_failed" if e.state == "failed" else "segments_loading"
                return [], t(lang_value, key, pct=int(e.progress * 100))
            except ValidationError as e:
                return [], str(e)
            rows = [[i + 1, s.text, s.n_tokens, s.emotion or t(lang_value, "segment_emotion_default"), s.pause_after_ms]
                    for i, s in enumerate(segs)]
            note = t(lang_value, "segments_count", n=len(rows), max=int(max_tokens_value)) if rows else ""
            return rows, note

        def refresh_status(text_value, max_tokens_value, lang_value):
            status = get_synthesizer().status()
            rows, note = preview(text_value, max_tokens_value, lang_value)
            # Poll only while loading; a fresh page load starts the timer again.
            return render_banner(status, lang_value), gr.Timer(active=status.state == "loading"), rows, note

        light = dict(concurrency_limit=None, show_progress="hidden")
        timer.tick(refresh_status, [text, max_tokens, lang], [banner, timer, segments, segments_note],
                   api_visibility="private", **light)
        demo.load(refresh_status, [text, max_tokens, lang], [banner, timer, segments, segments_note], api_name="status", **light)
        for trigger in (text.change, max_tokens.change):
            trigger(preview, [text, max_tokens, lang], [segments, segments_note], api_visibility="private", **light)

        # -- emotion mode and presets ----------------------------------------------------------

        def show_mode(mode):
            return (
                gr.update(visible=mode == "audio"),
                gr.update(visible=mode != "same_as_voice"),
                gr.update(visible=mode in ("vector", "text")),
                gr.update(visible=mode == "vector"),
                gr.update(visible=mode == "text"),
            )

        emo_mode.change(show_mode, emo_mode, [audio_box, emo_weight, emo_random, vector_box, text_box],
                        api_visibility="private", **light)

        for button, p in zip(preset_buttons, presets):
            def apply_preset(_p=p):
                return ["vector", _p["weight"], *_p["values"]]
            button.click(apply_preset, None, [emo_mode, emo_weight, *sliders], api_visibility="private", **light)

        # -- synthesis -------------------------------------------------------------------------

        def kind_label(lang_value):
            return lambda kind: t(lang_value, f"kind_{kind}") if kind in ("speech", "dialogue") else kind

        def history_view(lang_value, selected=None, message=""):
            """The history table, the entry choices and a message, read from the data folder."""
            records = get_synthesizer().history.list(HISTORY_LIMIT)
            choices = [(f"{r['id'][:15]} · {r.get('title', '')[:40]}", r["id"]) for r in records]
            ids = [r["id"] for r in records]
            return (history_rows(records, kind_label(lang_value)),
                    gr.update(choices=choices, value=selected if selected in ids else None), message)

        def result_view(path, timeline, srt_path, lang_value):
            rows = [[i + 1, s.text, round(s.start_s, 2), round(s.end_s, 2), s.emotion] for i, s in enumerate(timeline)]
            return rows, waveform_svg(path, timeline, t(lang_value, "out_wave_label")), str(srt_path) if srt_path else None

        def run_synthesis(request, lang_value, progress):
            synth = get_synthesizer()
            try:
                result = synth.synthesize(request, lambda f, stage: progress(f, desc=stage))
            except (ValidationError, NotReady, Busy, TimedOut) as e:
                raise gr.Error(str(e), print_exception=False) from e
            except Exception as e:  # an engine bug: tell the user plainly, keep the trace in the log
                log.exception("synthesis failed")
                raise gr.Error(f"synthesis failed: {type(e).__name__}: {e}") from e
            info = t(lang_value, "output_info", duration=result.duration_s, elapsed=result.elapsed_s, engine=result.engine,
                     name=result.path.name)
            if result.emotion_model:
                info += f" · {t(lang_value, 'emo_text_label')}: {result.emotion_model}"
            rows, svg, srt = result_view(result.path, result.timeline, result.srt_path, lang_value)
            table, select, _ = history_view(lang_value, result.history_id)
            return str(result.path), info, rows, svg, srt, table, select

        # Parameter names and defaults here are what gradio_client callers of /synthesize see.
        def synthesize(voice, text, emo_mode="same_as_voice", emo_audio=None, emo_weight=DEFAULT_WEIGHT, emo_random=False,
                       happy=0.0, angry=0.0, sad=0.0, afraid=0.0, disgusted=0.0, melancholic=0.0, surprised=0.0, calm=0.0,
                       emo_text=None, do_sample=DEFAULTS.do_sample, temperature=DEFAULTS.temperature, top_p=DEFAULTS.top_p,
                       top_k=DEFAULTS.top_k, num_beams=DEFAULTS.num_beams, repetition_penalty=DEFAULTS.repetition_penalty,
                       length_penalty=DEFAULTS.length_penalty, max_mel_tokens=DEFAULTS.max_mel_tokens,
                       max_tokens_per_segment=DEFAULTS.max_text_tokens_per_segment,
                       interval_silence_ms=DEFAULTS.interval_silence_ms, seed=None, lang="en",
                       use_glossary=True, output_format="wav", progress=gr.Progress()):
            try:
                emotion = build_emotion(emo_mode, emo_weight, emo_random,
                                        [happy, angry, sad, afraid, disgusted, melancholic, surprised, calm], emo_text)
                generation = build_generation(do_sample, temperature, top_p, top_k, num_beams, repetition_penalty,
                                              length_penalty, max_mel_tokens, max_tokens_per_segment, interval_silence_ms, seed)
            except ValidationError as e:
                raise gr.Error(str(e), print_exception=False) from e
            request = SynthesisRequest(text=text if text is not None else "", voice=voice, emotion=emotion,
                                       generation=generation, emotion_audio=emo_audio,
                                       use_glossary=True if use_glossary is None else bool(use_glossary),
                                       output_format=output_format or "wav")
            return run_synthesis(request, lang or "en", progress)

        result_outputs = [output, output_info, out_segments, out_wave, out_srt, history_table, history_select]
        synth_inputs = [voice, text, emo_mode, emo_audio, emo_weight, emo_random, *sliders, emo_text,
                        *generation_inputs, lang, use_glossary, out_format]
        generate.click(synthesize, synth_inputs, result_outputs, api_name="synthesize", concurrency_limit=1, concurrency_id="engine")

        # -- history (data/history: survives restarts) ---------------------------------------------

        def show_entry(entry_id, lang_value):
            if not entry_id:
                return None, [], ""
            history = get_synthesizer().history
            try:
                record = history.get(entry_id)
            except (ValueError, OSError) as e:
                return None, [], f"history: {e}"
            files = [str(history.audio_path(record))]
            files += [str(p) for p in (history.side_file(entry_id, ".srt"), history.side_file(entry_id, ".lines.zip")) if p.is_file()]
            return files[0], files, ""

        def delete_entry(entry_id, lang_value):
            if not entry_id:
                raise gr.Error(t(lang_value, "history_none"), print_exception=False)
            try:
                get_synthesizer().history.delete(entry_id)
            except (ValueError, OSError) as e:
                raise gr.Error(f"history: {e}", print_exception=False) from e
            return (*history_view(lang_value, None, t(lang_value, "history_deleted", id=entry_id)), None, [])

        def regenerate(entry_id, lang_value, progress=gr.Progress()):
            if not entry_id:
                raise gr.Error(t(lang_value, "history_none"), print_exception=False)
            synth = get_synthesizer()
            try:
                kind = synth.history.get(entry_id).get("kind")
                if kind == "dialogue":
                    dialogue = compose_from_history(synth, entry_id, lambda f, stage: progress(f, desc=stage))
                    table, select, _ = history_view(lang_value, dialogue.history_id)
                    return (str(dialogue.path), t(lang_value, "dlg_info", n=len(dialogue.lines), duration=dialogue.duration_s,
                                                  name=dialogue.path.name), [], "", str(dialogue.srt_path), table, select)
                request = synth.request_from_history(entry_id)
            except (ValidationError, NotReady, ValueError, OSError) as e:
                raise gr.Error(str(e), print_exception=False) from e
            return run_synthesis(request, lang_value, progress)

        history_select.change(show_entry, [history_select, lang], [history_audio, history_files, history_info],
                              api_visibility="private", **light)
        history_delete.click(delete_entry, [history_select, lang],
                             [history_table, history_select, history_info, history_audio, history_files],
                             api_name="delete_history", **light)
        history_regen.click(regenerate, [history_select, lang], result_outputs, api_name="regenerate",
                            concurrency_limit=1, concurrency_id="engine")
        history_refresh.click(history_view, [lang, history_select], [history_table, history_select, history_info],
                              api_visibility="private", **light)
        demo.load(history_view, [lang], [history_table, history_select, history_info], api_visibility="private", **light)

        # -- the user's emotion presets --------------------------------------------------------------

        def user_preset_list():
            return get_synthesizer().emotion_presets.list()

        def emotion_dropdowns(lang_value, users):
            """Fresh choices for every emotion dropdown (library default, dialogue roles)."""
            same = t(lang_value, "emo_choice_same")
            return ([gr.update(choices=emotion_choices(presets, users, lang_value, same))]
                    + [gr.update(choices=emotion_choices(presets, users, lang_value, same, t(lang_value, "emo_choice_voice_default")))
                       for _ in dlg_role_rows])

        def save_user_preset(name, mode, weight, use_random, *rest):
            *slider_values, emo_text_value, lang_value = rest
            store = get_synthesizer().emotion_presets
            try:
                saved, replaced = store.save({"name": name or "", "mode": mode, "weight": weight, "use_random": bool(use_random),
                                              "sliders": [float(v or 0.0) for v in slider_values], "text": emo_text_value or ""})
            except (ValueError, OSError) as e:
                raise gr.Error(f"emotion_preset.{e}" if isinstance(e, ValueError) else str(e), print_exception=False) from e
            users = store.list()
            message = t(lang_value, "emo_user_replaced" if replaced else "emo_user_saved", name=saved["name"])
            return [users, message, *emotion_dropdowns(lang_value, users)]

        def delete_user_preset(name, lang_value):
            store = get_synthesizer().emotion_presets
            name = (name or "").strip()
            try:
                deleted = store.delete(name)
            except OSError as e:
                raise gr.Error(str(e), print_exception=False) from e
            users = store.list()
            return [users, t(lang_value, "emo_user_deleted" if deleted else "emo_user_missing", name=name),
                    *emotion_dropdowns(lang_value, users)]

        def load_user_presets(lang_value):
            users = user_preset_list()
            return [users, *emotion_dropdowns(lang_value, users)]

        emotion_dropdown_outputs = [lib_emotion] + [r[3] for r in dlg_role_rows]
        emo_user_save.click(save_user_preset, [emo_user_name, emo_mode, emo_weight, emo_random, *sliders, emo_text, lang],
                            [user_presets, emo_user_info, *emotion_dropdown_outputs], api_name="save_emotion_preset", **light)
        emo_user_delete.click(delete_user_preset, [emo_user_name, lang], [user_presets, emo_user_info, *emotion_dropdown_outputs],
                              api_name="delete_emotion_preset", **light)
        demo.load(load_user_presets, [lang], [user_presets, *emotion_dropdown_outputs], api_visibility="private", **light)

        # -- voice library -------------------------------------------------------------------------

        def library_names():
            return [v.name for v in get_synthesizer().voices.scan()[0]]

        def library_view(selected=None, message=""):
            names = library_names()
            value = selected if selected in names else None
            pick = gr.update(choices=names, value=value)
            roles = [gr.update(choices=names) for _ in dlg_role_rows]
            return [gr.update(choices=names, value=value), pick, message, *roles]

        library_outputs = [lib_voices, voice_pick, lib_info] + [r[2] for r in dlg_role_rows]

        def show_voice(name, lang_value):
            if not name:
                return None, ""
            try:
                v = get_synthesizer().voices.get(name)
            except (ValueError, OSError) as e:
                return None, f"voice: {e}"
            return str(v.audio_path), t(lang_value, "lib_details", name=v.name, tags=", ".join(v.tags) or "-",
                                          emotion=choice_label(v.default_emotion, presets, lang_value), note=v.note)

        def pick_voice(name, users):
            """One click in the library list on the Synthesize tab: the voice, and its default emotion."""
            if not name:
                return [gr.update()] * 12
            try:
                v = get_synthesizer().voices.get(name)
            except (ValueError, OSError) as e:
                raise gr.Error(f"voice: {e}", print_exception=False) from e
            values = preset_widget_values(v.default_emotion, presets, users or []) if isinstance(v.default_emotion, str) else None
            if values is None:
                return [str(v.audio_path)] + [gr.update()] * 11
            mode, weight, slider_values, text_value = values
            return [str(v.audio_path), mode, weight, *slider_values, text_value]

        def use_voice(name, users, lang_value):
            if not name:
                raise gr.Error(t(lang_value, "lib_none"), print_exception=False)
            return [*pick_voice(name, users), gr.update(value=name), t(lang_value, "lib_used", name=name),
                    gr.Tabs(selected="tab_synth")]

        def save_library_voice(audio, name, tags_value, note, emotion_choice, overwrite, lang_value):
            try:
                saved, replaced = get_synthesizer().save_voice(
                    name or "", audio, tags=tags_value, note=note, overwrite=bool(overwrite),
                    default_emotion=None if emotion_choice in (None, SAME_AS_VOICE) else emotion_choice)
            except FileExistsError:
                raise gr.Error(plain(t(lang_value, "lib_exists", name=(name or "").strip())), print_exception=False) from None
            except ValidationError as e:
                raise gr.Error(str(e) if e.field != "voice" else f"voice: {str(e).split(': ', 1)[-1]}", print_exception=False) from e
            # The form empties so the next voice starts clean.
            return [*library_view(saved.name, t(lang_value, "lib_replaced" if replaced else "lib_saved", name=saved.name)),
                    None, "", "", "", False, SAME_AS_VOICE]

        def rename_voice(name, new_name, lang_value):
            if not name:
                raise gr.Error(t(lang_value, "lib_none"), print_exception=False)
            try:
                renamed = get_synthesizer().voices.rename(name, new_name or "")
            except FileExistsError:
                raise gr.Error(plain(t(lang_value, "lib_exists", name=(new_name or "").strip())), print_exception=False) from None
            except (ValueError, OSError) as e:
                raise gr.Error(f"name: {e}", print_exception=False) from e
            return library_view(renamed.name, t(lang_value, "lib_renamed", name=renamed.name))

        def delete_voice(name, lang_value):
            if not name:
                raise gr.Error(t(lang_value, "lib_none"), print_exception=False)
            try:
                get_synthesizer().voices.delete(name)
            except (ValueError, OSError) as e:
                raise gr.Error(f"voice: {e}", print_exception=False) from e
            return library_view(None, t(lang_value, "lib_deleted", name=name))

        def export_library():
            synth = get_synthesizer()
            path = synth.data.root / "exports" / f"voice-library-{datetime.now():%Y%m%d-%H%M%S}.zip"
            atomic_write_bytes(path, synth.export_voices())
            return str(path)

        def import_library(zip_path, overwrite, lang_value):
            if not zip_path:
                raise gr.Error("voices_zip: choose a library zip first", print_exception=False)
            try:
                imported, skipped = get_synthesizer().import_voices(zip_path, overwrite=bool(overwrite))
            except ValidationError as e:
                raise gr.Error(str(e), print_exception=False) from e
            return library_view(None, t(lang_value, "lib_imported", imported=", ".join(imported) or "-",
                                        skipped=", ".join(skipped) or "-"))

        lib_voices.change(show_voice, [lib_voices, lang], [lib_audio, lib_details], api_visibility="private", **light)
        voice_pick.input(pick_voice, [voice_pick, user_presets], [voice, emo_mode, emo_weight, *sliders, emo_text],
                         api_visibility="private", **light)
        lib_use.click(use_voice, [lib_voices, user_presets, lang],
                      [voice, emo_mode, emo_weight, *sliders, emo_text, voice_pick, lib_info, tabs],
                      api_visibility="private", **light)
        lib_save.click(save_library_voice, [lib_new_audio, lib_name, lib_tags, lib_note, lib_emotion, lib_overwrite, lang],
                       library_outputs + [lib_new_audio, lib_name, lib_tags, lib_note, lib_overwrite, lib_emotion],
                       api_name="save_voice", **light)
        lib_rename.click(rename_voice, [lib_voices, lib_rename_to, lang], library_outputs, api_name="rename_voice", **light)
        lib_delete.click(delete_voice, [lib_voices, lang], library_outputs, api_name="delete_voice", **light)
        lib_export.click(export_library, None, lib_export_file, api_name="export_voices", **light)
        lib_import.click(import_library, [lib_import_file, lib_import_overwrite, lang], library_outputs,
                         api_name="import_voices", **light)
        demo.load(library_view, None, library_outputs, api_visibility="private", **light)

        # -- dialogue --------------------------------------------------------------------------------

        def detect_roles(script, lang_value, *current):
            """Show one row per role of the script, keeping choices already made for a role."""
            try:
                names = roles_of(parse_script(script)) if (script or "").strip() else []
                note = t(lang_value, "dlg_roles_found", roles=", ".join(names)) if names else ""
            except ValidationError as e:
                names, note = [], str(e)
            if len(names) > MAX_UI_ROLES:
                note = t(lang_value, "dlg_too_many_roles", n=len(names), max=MAX_UI_ROLES)
            previous = {current[3 * i]: (current[3 * i + 1], current[3 * i + 2]) for i in range(MAX_UI_ROLES) if current[3 * i]}
            updates = []
            for n in range(MAX_UI_ROLES):
                role = names[n] if n < len(names) else ""
                voice_value, emotion_value = previous.get(role, (None, VOICE_DEFAULT))
                updates += [gr.update(visible=bool(role)), role, gr.update(value=voice_value), gr.update(value=emotion_value)]
            return [*updates, note]

        role_widgets = [w for row in dlg_role_rows for w in row[1:]]
        role_outputs = [w for row in dlg_role_rows for w in row]
        dlg_script.change(detect_roles, [dlg_script, lang, *role_widgets], [*role_outputs, dlg_roles_note],
                          api_visibility="private", **light)

        def voice_dialogue(script, pause_ms, fmt, lang_value, *role_values, progress=gr.Progress()):
            synth = get_synthesizer()
            users = synth.emotion_presets.list()
            roles = {}
            for n in range(MAX_UI_ROLES):
                role, voice_name, choice = role_values[3 * n: 3 * n + 3]
                if role:
                    default = synth.voices.get(voice_name).default_emotion if voice_name and synth.voices.exists(voice_name) else None
                    roles[role] = RoleSetting(voice_name or "", emotion_from_choice(choice or VOICE_DEFAULT, presets, users, default))
            try:
                result = compose(synth, script or "", roles, pause_ms=_whole(pause_ms, "pause_ms"), output_format=fmt or "wav",
                                 progress=lambda f, stage: progress(f, desc=stage))
            except (ValidationError, NotReady, Busy, TimedOut) as e:
                raise gr.Error(str(e), print_exception=False) from e
            except Exception as e:
                log.exception("dialogue failed")
                raise gr.Error(f"dialogue failed: {type(e).__name__}: {e}") from e
            rows = [[i + 1, r, v, text_value, round(s, 2), round(e, 2)] for i, (r, v, text_value, s, e) in enumerate(result.lines)]
            info = t(lang_value, "dlg_info", n=len(result.lines), duration=result.duration_s, name=result.path.name)
            timeline = get_synthesizer().history.get(result.history_id)["segments"]
            svg = waveform_svg(result.path, [TimedSegment(seg['text'], seg['start'], seg['end'], seg['emotion']) for seg in timeline], t(lang_value, "out_wave_label"))
            table, select, _ = history_view(lang_value, result.history_id)
            return str(result.path), info, svg, str(result.zip_path), str(result.srt_path), rows, table, select

        dlg_generate.click(voice_dialogue, [dlg_script, dlg_pause, dlg_format, lang, *role_widgets],
                           [dlg_audio, dlg_info, dlg_wave, dlg_zip, dlg_srt, dlg_lines, history_table, history_select],
                           api_name="dialogue", concurrency_limit=1, concurrency_id="engine")

        # -- saved presets ---------------------------------------------------------------------

        def preset_choices(lang_value, message=""):
            names, problems = get_synthesizer().presets.scan()
            if problems:
                skipped = t(lang_value, "preset_problems", names=", ".join(p.name for p in problems))
                message = f"{message}\n\n{skipped}" if message else skipped
            return names, message

        def refresh_presets(lang_value, selected=None):
            names, message = preset_choices(lang_value)
            return gr.update(choices=names, value=selected if selected in names else None), message

        def save_preset(name, voice=None, emo_audio=None, emo_mode="same_as_voice", emo_weight=DEFAULT_WEIGHT, emo_random=False,
                        happy=0.0, angry=0.0, sad=0.0, afraid=0.0, disgusted=0.0, melancholic=0.0, surprised=0.0, calm=0.0,
                        emo_text=None, lang="en", do_sample=DEFAULTS.do_sample, temperature=DEFAULTS.temperature,
                        top_p=DEFAULTS.top_p, top_k=DEFAULTS.top_k, num_beams=DEFAULTS.num_beams,
                        repetition_penalty=DEFAULTS.repetition_penalty, length_penalty=DEFAULTS.length_penalty,
                        max_mel_tokens=DEFAULTS.max_mel_tokens, max_tokens_per_segment=DEFAULTS.max_text_tokens_per_segment,
                        interval_silence_ms=DEFAULTS.interval_silence_ms, seed=None):
            voice_path, emo_audio_path, mode, weight, use_random = voice, emo_audio, emo_mode, emo_weight, emo_random
            slider_values = [happy, angry, sad, afraid, disgusted, melancholic, surprised, calm]
            emo_text_value, lang_value = emo_text, lang
            generation_values = [do_sample, temperature, top_p, top_k, num_beams, repetition_penalty, length_penalty,
                                 max_mel_tokens, max_tokens_per_segment, interval_silence_ms, seed]
            params = {
                "emotion": {"mode": mode, "weight": weight, "use_random": bool(use_random),
                            "sliders": [float(v or 0.0) for v in slider_values], "text": emo_text_value or ""},
                "generation": dict(zip(generation_names, generation_values)),
            }
            try:
                preset, replaced = get_synthesizer().presets.save(name or "", params, voice=voice_path,
                                                                   emotion_audio=emo_audio_path if mode == "audio" else None)
            except (ValueError, OSError) as e:
                raise gr.Error(f"preset: {e}", print_exception=False) from e
            message = t(lang_value, "preset_overwritten" if replaced else "preset_saved", name=preset.name)
            names, message = preset_choices(lang_value, message)
            return gr.update(choices=names, value=preset.name), message

        def load_preset(name, lang_value):
            if not name:
                raise gr.Error(t(lang_value, "preset_none"), print_exception=False)
            try:
                preset = get_synthesizer().presets.load(name)
            except (ValueError, OSError) as e:
                raise gr.Error(f"preset: {e}", print_exception=False) from e
            emotion = preset.params.get("emotion", {})
            generation = preset.params.get("generation", {})
            slider_values = list(emotion.get("sliders", [0.0] * 8))[:8]
            slider_values += [0.0] * (8 - len(slider_values))
            mode = emotion.get("mode", "same_as_voice")
            return [
                str(preset.voice_path) if preset.voice_path else None,
                str(preset.emotion_audio_path) if preset.emotion_audio_path else None,
                mode if mode in EMOTION_MODES else "same_as_voice",
                emotion.get("weight", DEFAULT_WEIGHT),
                bool(emotion.get("use_random", False)),
                *slider_values,
                emotion.get("text", ""),
                *[generation.get(n, getattr(DEFAULTS, n)) for n in generation_names],
                t(lang_value, "preset_loaded", name=preset.name),
            ]

        def delete_preset(name, lang_value):
            if not name:
                raise gr.Error(t(lang_value, "preset_none"), print_exception=False)
            try:
                get_synthesizer().presets.delete(name)
            except (ValueError, OSError) as e:
                raise gr.Error(f"preset: {e}", print_exception=False) from e
            names, message = preset_choices(lang_value, t(lang_value, "preset_deleted", name=name))
            return gr.update(choices=names, value=None), message

        preset_save.click(save_preset, [preset_name, voice, emo_audio, emo_mode, emo_weight, emo_random, *sliders, emo_text, lang,
                                        *generation_inputs], [preset_select, preset_info], api_name="save_preset", **light)
        preset_load.click(load_preset, [preset_select, lang],
                          [voice, emo_audio, emo_mode, emo_weight, emo_random, *sliders, emo_text, *generation_inputs, preset_info],
                          api_name="load_preset", **light)
        preset_delete.click(delete_preset, [preset_select, lang], [preset_select, preset_info], api_name="delete_preset", **light)
        preset_refresh.click(refresh_presets, [lang, preset_select], [preset_select, preset_info], api_visibility="private", **light)
        demo.load(refresh_presets, [lang], [preset_select, preset_info], api_visibility="private", **light)

        # -- custom term pronunciations ----------------------------------------------------------

        def glossary_rows(lang_value, message=""):
            store = get_synthesizer().glossary
            rows = [list(row) for row in store.list()]
            if store.problem:
                problem = t(lang_value, "glossary_problem", problem=store.problem)
                message = f"{message}\n\n{problem}" if message else problem
            return rows, message

        def add_term(term, zh=None, en=None, lang="en"):
            try:
                _, replaced = get_synthesizer().glossary.add(term or "", zh, en)
            except (ValueError, OSError) as e:
                raise gr.Error(f"glossary.{e}" if isinstance(e, ValueError) else f"glossary: {e}", print_exception=False) from e
            key = "glossary_replaced" if replaced else "glossary_added"
            rows, message = glossary_rows(lang, t(lang, key, term=(term or "").strip()))
            return rows, message, "", "", ""

        def remove_term(term, lang="en"):
            term = (term or "").strip()
            if not term:
                raise gr.Error(t(lang, "glossary_none"), print_exception=False)
            try:
                removed = get_synthesizer().glossary.remove(term)
            except OSError as e:
                raise gr.Error(f"glossary: {e}", print_exception=False) from e
            rows, message = glossary_rows(lang, t(lang, "glossary_removed" if removed else "glossary_missing", term=term))
            return rows, message, ""

        def refresh_glossary(lang_value):
            return glossary_rows(lang_value)

        def pick_term(rows, evt: gr.SelectData):
            # Clicking a row fills the boxes, so a term can be edited (Add) or removed.
            try:
                row = rows.values.tolist()[evt.index[0]] if hasattr(rows, "values") else rows[evt.index[0]]
            except (IndexError, TypeError, KeyError):
                return gr.update(), gr.update(), gr.update()
            return row[0], row[1], row[2]

        glossary_add.click(add_term, [glossary_term, glossary_zh, glossary_en, lang],
                           [glossary_table, glossary_info, glossary_term, glossary_zh, glossary_en], api_name="add_term", **light)
        glossary_remove.click(remove_term, [glossary_term, lang], [glossary_table, glossary_info, glossary_term],
                              api_name="remove_term", **light)
        glossary_table.select(pick_term, glossary_table, [glossary_term, glossary_zh, glossary_en],
                              api_visibility="private", **light)
        demo.load(refresh_glossary, [lang], [glossary_table, glossary_info], api_visibility="private", **light)

        # -- language switch -------------------------------------------------------------------

        # Table headers follow the language too (the segment preview is refilled below with its rows).
        tables = [(out_segments, "out_segments_headers"), (history_table, "history_headers"), (dlg_lines, "dlg_lines_headers")]

        def retitle(table_value, key, lang_value):
            """A table's rows under headers in `lang_value` (a Dataframe takes its headers from its value)."""
            headers = t(lang_value, key).split("|")
            rows = table_value.values.tolist() if hasattr(table_value, "values") else list(table_value or [])
            rows = [r for r in rows if len(r) == len(headers) and any(str(c).strip() for c in r)]
            return gr.update(value={"data": rows, "headers": headers}, headers=headers)

        def switch_language(lang_value, text_value, max_tokens_value, users, *table_values):
            updates = [gr.update(**make(lang_value)) for _, make in translatable]
            updates.append(gr.update(choices=mode_choices(lang_value), label=t(lang_value, "emo_mode_label")))
            updates += [gr.update(label=emotion_label(lang_value, e)) for e in EMOTIONS]
            updates += [gr.update(label=t(lang_value, key)) for key in ("tab_synth", "tab_library", "tab_dialogue", "tab_presets")]
            for n in range(MAX_UI_ROLES):
                updates += [gr.update(label=t(lang_value, key, n=n + 1)) for key in ("dlg_role", "dlg_role_voice", "dlg_role_emotion")]
            updates.append(gr.update(label=t(lang_value, "lib_emotion")))
            updates += [retitle(value, key, lang_value) for value, (_, key) in zip(table_values, tables)]
            updates.append(render_banner(get_synthesizer().status(), lang_value))
            rows, note = preview(text_value, max_tokens_value, lang_value)
            updates += [retitle(rows, "segments_headers", lang_value), note]
            return updates

        lang.change(switch_language, [lang, text, max_tokens, user_presets, *(table for table, _ in tables)],
                    [c for c, _ in translatable] + [emo_mode, *sliders, tab_synth, tab_library, tab_dialogue, tab_presets]
                    + [w for row in dlg_role_rows for w in row[1:]] + [lib_emotion] + [table for table, _ in tables]
                    + [banner, segments, segments_note],
                    api_visibility="private", **light)
        lang.change(lambda lang_value, users: emotion_dropdowns(lang_value, users or []), [lang, user_presets],
                    emotion_dropdown_outputs, api_visibility="private", **light)

    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def mount_ui(app, get_synthesizer: Callable[[], Synthesizer], allowed_paths: list[str]):
    """Build the page and mount it at "/" of a FastAPI app (declare other routes first).

    allowed_paths: folders Gradio may serve files from (the data folder: outputs, presets).
    """
    return gr.mount_gradio_app(app, build_ui(get_synthesizer), path="/", allowed_paths=allowed_paths,
                               css=CSS, footer_links=["api"])
