"""The generation settings, made from `GenerationParams`' fields.

FIELD_UI is the one table of how each field looks on the page; the widgets, the /synthesize and
/save_preset parameters, the values a saved preset stores and restores all follow it, in the
dataclass' field order. A new field without a row here fails tests/test_ui_rooms.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import gradio as gr

from index_tts.service import GenerationParams, ValidationError
from index_tts.ui.page import Page, param
from index_tts.ui.strings import STRINGS, t

DEFAULTS = GenerationParams()
PER_ROW = 4


@dataclass(frozen=True)
class FieldUI:
    kind: str                  # "checkbox", "slider", "number" (empty allowed) or "radio"
    step: float = 1
    label: str | None = None   # a strings key; None: the field's own name (a sampling term)
    param: str | None = None   # the endpoint parameter, when it differs from the field's name
    elem_id: str | None = None


FIELD_UI = {
    "do_sample": FieldUI("checkbox"),
    "temperature": FieldUI("slider", 0.05),
    "top_p": FieldUI("slider", 0.01),
    "top_k": FieldUI("slider", 1, label="top_k"),
    "num_beams": FieldUI("slider", 1),
    "repetition_penalty": FieldUI("slider", 0.1),
    "length_penalty": FieldUI("slider", 0.1),
    "max_mel_tokens": FieldUI("slider", 10, label="max_mel_tokens"),
    "max_text_tokens_per_segment": FieldUI("slider", 2, label="max_tokens_segment", param="max_tokens_per_segment",
                                           elem_id="max_tokens_per_segment"),
    "interval_silence_ms": FieldUI("slider", 10, label="interval_silence", elem_id="interval_silence"),
    "seed": FieldUI("number", label="seed"),
    "quality": FieldUI("radio", label="quality"),
    "duration_factor": FieldUI("slider", 0.05, label="duration_factor"),
}

NAMES = [f.name for f in dataclasses.fields(GenerationParams)]
TYPES = {f.name: str(getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(GenerationParams)}


def param_name(name: str) -> str:
    return FIELD_UI[name].param or name


def form() -> list:
    """The endpoint parameters of the generation settings, with their defaults."""
    return [param(param_name(n), getattr(DEFAULTS, n)) for n in NAMES]


def quality_choices(lang: str) -> list[tuple[str, str]]:
    """The allowed qualities (GenerationParams.QUALITIES), each in words where strings has them."""
    return [(t(lang, f"quality_{q}") if f"quality_{q}" in STRINGS["en"] else q, q) for q in GenerationParams.QUALITIES]


def widget(page: Page, name: str):
    ui, default, elem_id = FIELD_UI[name], getattr(DEFAULTS, name), FIELD_UI[name].elem_id or name
    label = t("en", ui.label) if ui.label else name
    if ui.kind == "checkbox":
        component = gr.Checkbox(default, label=label, elem_id=elem_id)
    elif ui.kind == "slider":
        low, high = GenerationParams.RANGES[name]
        component = gr.Slider(low, high, value=default, step=ui.step, label=label, elem_id=elem_id)
    elif ui.kind == "number":
        component = gr.Number(default, precision=0, label=label, elem_id=elem_id)
    elif ui.kind == "radio":
        component = page.follows_language(gr.Radio(quality_choices("en"), value=default, label=label, elem_id=elem_id),
                                          lambda lang: {"choices": quality_choices(lang), "label": t(lang, ui.label)})
        return component
    else:
        raise ValueError(f"generation field {name}: unknown widget kind {ui.kind!r}")
    return page.tr(component, label=ui.label) if ui.label else component


def layout(page: Page) -> list:
    """The Advanced accordion's widgets, PER_ROW to a row, in field order."""
    widgets = {}
    with page.tr(gr.Accordion(t("en", "advanced"), open=False, elem_id="advanced"), label="advanced"):
        for start in range(0, len(NAMES), PER_ROW):
            with gr.Row():
                for name in NAMES[start:start + PER_ROW]:
                    widgets[name] = widget(page, name)
    page.room("generation", widgets=widgets, inputs=[widgets[n] for n in NAMES])
    return page.generation.inputs


def whole(value, field: str) -> int:
    """Sliders and number boxes send floats; integer settings must be whole (ValidationError(field))."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field, f"{field} must be a number, got {value!r}")
    return int(round(value))


def _value(name: str, value):
    kind = TYPES[name]
    if name == "seed":
        empty = value is None or value == "" or (isinstance(value, (int, float)) and (math.isnan(value) or value < 0))
        return None if empty else whole(value, f"generation.{name}")
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return whole(value, f"generation.{name}")
    if kind == "float":
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"generation.{name}", f"generation.{name} must be a number, got {value!r}")
        return float(value)
    return value


def from_form(values: dict) -> GenerationParams:
    """GenerationParams from endpoint values keyed by parameter name (ValidationError naming the field)."""
    return GenerationParams(**{n: _value(n, values[param_name(n)]) for n in NAMES})


def record(values: dict) -> dict:
    """What a saved preset stores: field name -> value, from endpoint values."""
    return {n: values[param_name(n)] for n in NAMES}


def restore(saved: dict) -> list:
    """Widget values, in field order, from a preset's stored record (defaults for what it lacks)."""
    return [saved.get(n, getattr(DEFAULTS, n)) for n in NAMES]
