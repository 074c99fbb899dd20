"""The emotion section of the Synthesize tab: mode, one-click presets, the user's own presets,
reference audio, weight, randomness, the eight sliders and the emotion description."""

from __future__ import annotations

import gradio as gr

from index_tts.service import (DEFAULT_WEIGHT, EMOTION_MODES, EMOTIONS, EmotionSpec, Synthesizer, ValidationError,
                               builtin_emotion_presets)
from index_tts.ui.creator import emotion_choices
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import LIGHT, MAX_UI_ROLES, Page, param
from index_tts.ui.strings import emotion_label, t

# The emotion widgets as endpoint parameters, in the order /synthesize takes them.
FORM = [param("emo_mode", "same_as_voice"), param("emo_audio", None), param("emo_weight", DEFAULT_WEIGHT),
        param("emo_random", False), *[param(e, 0.0) for e in EMOTIONS], param("emo_text", None)]


def number(value, field: str, default: float = 0.0) -> float:
    """A slider's value as a float (`default` when empty); ValidationError(field) if it is no number."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"{field} must be a number, got {value!r}")
    return float(value)


def record(values: dict) -> dict:
    """The emotion widgets' values as an emotion record (slider positions under "sliders"):
    what a saved preset stores."""
    return {"mode": values["emo_mode"], "weight": number(values["emo_weight"], "emotion.weight", DEFAULT_WEIGHT),
            "use_random": bool(values["emo_random"]), "sliders": [number(values[e], f"emotion.vector.{e}") for e in EMOTIONS],
            "text": values["emo_text"] or ""}


def from_form(values: dict) -> EmotionSpec:
    """What the widgets mean: the record's EmotionSpec (in slider mode the upstream WebUI rule,
    per-emotion bias and total capped at 0.8, applies to the slider positions)."""
    try:
        return EmotionSpec.from_record(record(values))
    except ValueError as e:
        raise ValidationError("emotion", str(e)) from e


def restore(saved: dict) -> list:
    """[mode, weight, use_random, *8 sliders, text] from a stored emotion record (a saved
    preset's emotion, or one of the user's emotion presets)."""
    sliders = list(saved.get("sliders", []))[:8]
    mode = saved.get("mode", "same_as_voice")
    return [mode if mode in EMOTION_MODES else "same_as_voice", saved.get("weight", DEFAULT_WEIGHT),
            bool(saved.get("use_random", False)), *sliders, *[0.0] * (8 - len(sliders)), saved.get("text", "")]


def mode_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, f"mode_{m}"), m) for m in EMOTION_MODES]


def show_mode(mode):
    """Which widgets a mode uses: audio box, weight, randomness, sliders, description."""
    return (gr.update(visible=mode == "audio"), gr.update(visible=mode != "same_as_voice"),
            gr.update(visible=mode in ("vector", "text")), gr.update(visible=mode == "vector"), gr.update(visible=mode == "text"))


def builtin_values(preset: dict) -> list:
    """A one-click preset in the widgets: slider mode, its weight and values."""
    return ["vector", preset["weight"], *preset["values"]]


# With "generate on click" ticked, a preset click then presses Generate: the very same event as a
# click on it, reading the widgets after the preset has set them.
CLICK_GENERATE = "(on) => { if (on) document.querySelector('#generate_btn').click(); }"


def generate_on_click(page: Page, preset_click) -> None:
    preset_click.then(None, [page.synth.generate_on_click], None, js=CLICK_GENERATE, api_visibility="private")


def emotion_dropdowns(lang_value: str, users: list[dict]) -> list:
    """Fresh choices for every emotion dropdown: the library's default, then each dialogue role's."""
    same = t(lang_value, "emo_choice_same")
    return ([gr.update(choices=emotion_choices(builtin_emotion_presets(), users, lang_value, same))]
            + [gr.update(choices=emotion_choices(builtin_emotion_presets(), users, lang_value, same, t(lang_value, "emo_choice_voice_default")))
               for _ in range(MAX_UI_ROLES)])


@shows_errors
def save_user_preset(synth: Synthesizer, name, mode, weight, use_random, *rest):
    *slider_values, emo_text_value, lang_value = rest
    saved, replaced = synth.save_emotion_preset(name or "", mode, weight, [number(v, f"emotion_preset.sliders.{e}")
                                                                           for e, v in zip(EMOTIONS, slider_values)],
                                                text=emo_text_value or "", use_random=bool(use_random))
    users = synth.list_emotion_presets()
    message = t(lang_value, "emo_user_replaced" if replaced else "emo_user_saved", name=saved["name"])
    return [users, message, *emotion_dropdowns(lang_value, users)]


@shows_errors
def delete_user_preset(synth: Synthesizer, name, lang_value):
    name = (name or "").strip()
    synth.delete_emotion_preset(name)
    users = synth.list_emotion_presets()
    return [users, t(lang_value, "emo_user_deleted", name=name), *emotion_dropdowns(lang_value, users)]


def load_user_presets(synth: Synthesizer, lang_value):
    users = synth.list_emotion_presets()
    return [users, *emotion_dropdowns(lang_value, users)]


def preset_buttons(page: Page) -> list:
    """The one-click presets, a compact row the Synthesize tab places beside Generate."""
    page.tr(gr.Markdown(t("en", "emo_presets_label"), elem_id="emo_presets_label"), value="emo_presets_label")
    with gr.Row(elem_classes="emo-preset-row", elem_id="emo_preset_row"):
        return [gr.Button(f"{p['en']} · {p['zh']}", size="sm", elem_id=f"emo_preset_{p['id']}", scale=0, min_width=60)
                for p in builtin_emotion_presets()]


def layout(page: Page, buttons: list):
    """The rest of the emotion section (below the results); `buttons` are preset_buttons()."""
    tr = page.tr
    with tr(gr.Accordion(t("en", "emo_section"), open=True, elem_id="emo_section"), label="emo_section"):
        mode = page.follows_language(gr.Radio(mode_choices("en"), value="same_as_voice", label=t("en", "emo_mode_label"), elem_id="emo_mode"),
                                     lambda lang: {"choices": mode_choices(lang), "label": t(lang, "emo_mode_label")})
        tr(gr.Markdown(t("en", "emo_user_label"), elem_id="emo_user_label"), value="emo_user_label")
        users = gr.State([])
        with gr.Row(elem_classes="emo-preset-row", elem_id="emo_user_row"):
            @gr.render(inputs=[users, page.lang])
            def render_user_presets(items, lang_value):
                # Real <button>s: reachable with Tab, pressed with Enter or Space.
                if not items:
                    gr.Markdown(t(lang_value or "en", "emo_user_none"), elem_id="emo_user_empty")
                for i, item in enumerate(items or []):
                    button = gr.Button(item["name"], size="sm", elem_id=f"emo_user_{i}", scale=0, min_width=90)
                    generate_on_click(page, button.click(lambda _i=item: restore(_i), None, room.restorable,
                                                         api_visibility="private", **LIGHT))
        with gr.Row():
            name = tr(gr.Textbox(label=t("en", "emo_user_name"), elem_id="emo_user_name", max_lines=1, scale=2), label="emo_user_name")
            save = tr(gr.Button(t("en", "emo_user_save"), elem_id="emo_user_save_btn", scale=0), value="emo_user_save")
            delete = tr(gr.Button(t("en", "emo_user_delete"), variant="stop", elem_id="emo_user_delete_btn", scale=0), value="emo_user_delete")
        info = gr.Markdown("", elem_id="emo_user_info")
        with gr.Column(visible=False) as audio_box:
            audio = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "emo_audio_label"), elem_id="emo_audio"),
                       label="emo_audio_label")
        weight = tr(gr.Slider(0.0, 1.0, value=DEFAULT_WEIGHT, step=0.01, label=t("en", "emo_weight_label"), elem_id="emo_weight",
                              visible=False), label="emo_weight_label")
        random = tr(gr.Checkbox(False, label=t("en", "emo_random_label"), info=t("en", "emo_random_info"), elem_id="emo_random",
                                visible=False), label="emo_random_label", info="emo_random_info")
        with gr.Column(visible=False) as vector_box:
            tr(gr.Markdown(t("en", "vector_note"), elem_id="vector_note"), value="vector_note")
            with gr.Row():
                sliders = [page.follows_language(gr.Slider(0.0, 1.0, value=0.0, step=0.05, label=emotion_label("en", e), elem_id=f"emo_{e}",
                                                           min_width=120), lambda lang, e=e: {"label": emotion_label(lang, e)})
                           for e in EMOTIONS]
        with gr.Column(visible=False) as text_box:
            text = tr(gr.Textbox(label=t("en", "emo_text_label"), placeholder=t("en", "emo_text_placeholder"), elem_id="emo_text"),
                      label="emo_text_label", placeholder="emo_text_placeholder")
    room = page.room("emotion", mode=mode, buttons=buttons, users=users, name=name, save=save, delete=delete, info=info,
                     audio_box=audio_box, audio=audio, weight=weight, random=random, vector_box=vector_box, sliders=sliders,
                     text_box=text_box, text=text,
                     # Synthesize's parameters in FORM order; what a preset restores.
                     inputs=[mode, audio, weight, random, *sliders, text], restorable=[mode, weight, random, *sliders, text])
    return room


def wire(page: Page, demo: gr.Blocks):
    e = page.emotion
    e.mode.change(show_mode, e.mode, [e.audio_box, e.weight, e.random, e.vector_box, e.text_box], api_visibility="private", **LIGHT)
    for button, preset in zip(e.buttons, builtin_emotion_presets()):
        generate_on_click(page, button.click(lambda _p=preset: builtin_values(_p), None, [e.mode, e.weight, *e.sliders],
                                             api_visibility="private", **LIGHT))
    dropdowns = page.emotion_dropdowns
    e.save.click(page.bind(save_user_preset), [e.name, e.mode, e.weight, e.random, *e.sliders, e.text, page.lang],
                 [e.users, e.info, *dropdowns], api_name="save_emotion_preset", **LIGHT)
    e.delete.click(page.bind(delete_user_preset), [e.name, page.lang], [e.users, e.info, *dropdowns],
                   api_name="delete_emotion_preset", **LIGHT)
    demo.load(page.bind(load_user_presets), [page.lang], [e.users, *dropdowns], api_visibility="private", **LIGHT)
    page.lang.change(lambda lang_value, users: emotion_dropdowns(lang_value, users or []), [page.lang, e.users], dropdowns,
                     api_visibility="private", **LIGHT)
