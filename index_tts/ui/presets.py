"""The Saved presets tab: the whole Synthesize form (voice, emotion, every generation setting,
the model and its language) saved under a name, loaded back, deleted."""

from __future__ import annotations

import gradio as gr

from index_tts.service import EMOTIONS, Synthesizer
from index_tts.ui import emotion, generation, model
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import LIGHT, Page, fill, param
from index_tts.ui.strings import t

# /save_preset's parameters, in the order of its inputs (gradio_client callers pass them by position).
FORM = [param("name"), param("voice", None), param("emo_audio", None), param("emo_mode", "same_as_voice"),
        *[p for p in emotion.FORM if p.name not in ("emo_mode", "emo_audio")], param("lang", "en"), *generation.form(), *model.FORM]


def preset_choices(synth: Synthesizer, lang_value, message=""):
    names, problems = synth.list_presets()
    if problems:
        skipped = t(lang_value, "preset_problems", names=", ".join(p.name for p in problems))
        message = f"{message}\n\n{skipped}" if message else skipped
    return names, message


def refresh_presets(synth: Synthesizer, lang_value, selected=None):
    names, message = preset_choices(synth, lang_value)
    return gr.update(choices=names, value=selected if selected in names else None), message


@shows_errors
def save_preset(synth: Synthesizer, **form):
    """Save FORM's values (defaults for what is missing) under form["name"]: [preset choices, message]."""
    values = fill(FORM, form)
    params = {"emotion": emotion.record(values), "generation": generation.record(values),
              "model": values["model"] or synth.models()[0].id, "language": values["language"] or "auto"}
    preset, replaced = synth.save_preset(values["name"] or "", params, voice=values["voice"],
                                          emotion_audio=values["emo_audio"] if values["emo_mode"] == "audio" else None)
    names, message = preset_choices(synth, values["lang"], t(values["lang"], "preset_overwritten" if replaced else "preset_saved",
                                                             name=preset.name))
    return gr.update(choices=names, value=preset.name), message


@shows_errors
def load_preset(synth: Synthesizer, name, lang_value="en"):
    """[voice, emotion audio, mode, weight, use_random, *8 sliders, emotion text, *generation
    settings in field order, model, language, message]."""
    if not name:
        raise gr.Error(t(lang_value, "preset_none"), print_exception=False)
    preset = synth.load_preset(name)
    mode, *rest = emotion.restore(preset.params.get("emotion", {}))
    chosen, note = model.restore(synth, preset.params, lang_value)
    message = t(lang_value, "preset_loaded", name=preset.name) + (f"\n\n{note}" if note else "")
    return [str(preset.voice_path) if preset.voice_path else None,
            str(preset.emotion_audio_path) if preset.emotion_audio_path else None,
            mode, *rest, *generation.restore(preset.params.get("generation", {})), *chosen, message]


@shows_errors
def delete_preset(synth: Synthesizer, name, lang_value="en"):
    if not name:
        raise gr.Error(t(lang_value, "preset_none"), print_exception=False)
    synth.delete_preset(name)
    names, message = preset_choices(synth, lang_value, t(lang_value, "preset_deleted", name=name))
    return gr.update(choices=names, value=None), message


def layout(page: Page):
    tr = page.tr
    tr(gr.Markdown(t("en", "presets_section"), elem_id="presets_title"), value="presets_section")
    with gr.Row():
        select = tr(gr.Dropdown([], label=t("en", "preset_select"), elem_id="preset_select", scale=2), label="preset_select")
        load = tr(gr.Button(t("en", "preset_load"), elem_id="preset_load_btn", scale=0), value="preset_load")
        delete = tr(gr.Button(t("en", "preset_delete"), variant="stop", elem_id="preset_delete_btn", scale=0), value="preset_delete")
        refresh = tr(gr.Button(t("en", "preset_refresh"), elem_id="preset_refresh_btn", scale=0), value="preset_refresh")
    with gr.Row():
        name = tr(gr.Textbox(label=t("en", "preset_name"), elem_id="preset_name", scale=2), label="preset_name")
        save = tr(gr.Button(t("en", "preset_save"), variant="primary", elem_id="preset_save_btn", scale=0), value="preset_save")
    info = gr.Markdown("", elem_id="preset_info")
    page.room("presets", select=select, load=load, delete=delete, refresh=refresh, name=name, save=save, info=info)


def wire(page: Page, demo: gr.Blocks):
    p, s, e = page.presets, page.synth, page.emotion
    by_name = {"name": p.name, "voice": s.voice, "emo_audio": e.audio, "emo_mode": e.mode, "emo_weight": e.weight,
               "emo_random": e.random, "emo_text": e.text, "lang": page.lang, **dict(zip(EMOTIONS, e.sliders)),
               **{generation.param_name(n): w for n, w in page.generation.widgets.items()},
               "model": page.model.switch, "language": page.model.language}
    p.save.click(page.bind(save_preset, FORM), [by_name[f.name] for f in FORM], [p.select, p.info], api_name="save_preset", **LIGHT)
    p.load.click(page.bind(load_preset), [p.select, page.lang],
                 [s.voice, e.audio, *e.restorable, *page.generation.inputs, *page.model.inputs, p.info],
                 api_name="load_preset", **LIGHT)
    p.delete.click(page.bind(delete_preset), [p.select, page.lang], [p.select, p.info], api_name="delete_preset", **LIGHT)
    p.refresh.click(page.bind(refresh_presets), [page.lang, p.select], [p.select, p.info], api_visibility="private", **LIGHT)
    demo.load(page.bind(refresh_presets), [page.lang], [p.select, p.info], api_visibility="private", **LIGHT)
