"""The model switch of the Synthesize tab (the models the studio serves) and, for a model that
takes one (IndexTTS-2.5), the language of the text. Both reach the request, the segment preview,
saved presets and history through the service; what each model can do comes from its ModelInfo."""

from __future__ import annotations

import gradio as gr

from index_tts.service import DEFAULT_MODEL, TEXT_LANGUAGES, ModelInfo, Synthesizer
from index_tts.ui.page import LIGHT, Page, param
from index_tts.ui.strings import t

# The endpoint parameters (/synthesize, /save_preset): None is the studio's default model.
FORM = [param("model", None), param("language", "auto")]


def served(synth: Synthesizer) -> list[ModelInfo]:
    return [m for m in synth.models() if m.available]


def language_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, f"tts_lang_{code}"), code) for code in TEXT_LANGUAGES]


def takes_language(synth: Synthesizer, model_value) -> bool:
    return any(m.id == model_value and m.takes_language for m in synth.models())


def switch_model(synth: Synthesizer, model_value):
    """The language choice shows for a model that takes one."""
    return gr.update(visible=takes_language(synth, model_value))


def restore(synth: Synthesizer, saved: dict, lang_value) -> tuple[list, str]:
    """[model, language] widget values from a preset's stored params, and a note when its model
    is not served here (records from before the model choice are IndexTTS2's)."""
    model = saved.get("model") or DEFAULT_MODEL
    language = saved.get("language") if saved.get("language") in TEXT_LANGUAGES else "auto"
    if model not in [m.id for m in served(synth)]:
        default = synth.models()[0]
        return [gr.update(), language], t(lang_value, "model_not_served", model=model, default=default.label)
    return [model, language], ""


def layout(page: Page):
    synth = page.get_synthesizer()
    models, default = served(synth), synth.models()[0]
    with gr.Row():
        switch = page.tr(gr.Radio([(m.label, m.id) for m in models] or [(default.label, default.id)], value=default.id,
                                  label=t("en", "model_label"), info=t("en", "model_info"), elem_id="model_switch", scale=1),
                         label="model_label", info="model_info")
        language = page.follows_language(
            gr.Radio(language_choices("en"), value="auto", label=t("en", "tts_language_label"), elem_id="tts_language",
                     visible=default.takes_language, scale=2),
            lambda lang: {"choices": language_choices(lang), "label": t(lang, "tts_language_label")})
    page.room("model", switch=switch, language=language, inputs=[switch, language])


def wire(page: Page, demo: gr.Blocks):
    m = page.model
    m.switch.change(page.bind(switch_model), [m.switch], [m.language], api_visibility="private", **LIGHT)
