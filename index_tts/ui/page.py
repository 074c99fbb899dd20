"""What every room of the page shares: the translatable-widget registry, the event settings, and
`bind`, which turns a module-level handler `handler(synth, ...)` into the function Gradio calls.

Rooms (one module per tab or section) build their widgets with `layout(page)` and connect them
with `wire(page)`; their handlers take the synthesizer as first argument, so tests call them
directly with a synthesizer and no browser.
"""

from __future__ import annotations

import functools
import inspect
from types import SimpleNamespace
from typing import Callable

import gradio as gr

from index_tts.service import Synthesizer, no_progress
from index_tts.ui.strings import t

OUTPUT_FORMATS = [("WAV", "wav"), ("MP3", "mp3"), ("FLAC", "flac"), ("OGG", "ogg")]
MAX_UI_ROLES = 6
# Light events (status, preview, presets) bypass the engine's limit so the page stays responsive.
LIGHT = dict(concurrency_limit=None, show_progress="hidden")
ENGINE = dict(concurrency_limit=1, concurrency_id="engine")


def plain(message: str) -> str:
    """A strings entry without its Markdown emphasis, for error toasts (which show text as is)."""
    return message.replace("**", "")


def param(name: str, default=inspect.Parameter.empty) -> inspect.Parameter:
    """One named parameter of an endpoint form (what gradio_client callers see)."""
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)


def fill(form: list[inspect.Parameter], given: dict) -> dict:
    """`given` with the form's defaults for what it lacks; an unknown name is a TypeError."""
    bound = inspect.Signature(form).bind_partial(**given)
    bound.apply_defaults()
    return dict(bound.arguments)


def reporter(progress) -> Callable[[float, str], None]:
    """The service's progress callback for a handler's `progress` (a gr.Progress, or None in tests)."""
    return no_progress if progress is None else (lambda fraction, stage: progress(fraction, desc=stage))


def bind(get_synthesizer: Callable[[], Synthesizer], handler, form: list[inspect.Parameter] | None = None):
    """`handler(synth, *args)` as the Gradio function `fn(*args)`, the synthesizer looked up per call.

    Gradio reads parameter names (the API's), defaults and a `gr.Progress` default from the
    signature. Without `form` that is the handler's own, less `synth`, with a `progress`
    parameter defaulting to a gr.Progress; with `form` the handler takes the form as keywords
    (`handler(synth, **form)`) and `form` is the signature.
    """
    if form is None and inspect.isgeneratorfunction(handler):
        # Gradio streams a handler's yields only when the function it is given is a generator.
        form = list(inspect.signature(handler).parameters.values())[1:]

        def fn(*args, **kwargs):
            yield from handler(get_synthesizer(), *args, **kwargs)
    elif form is None:
        form = list(inspect.signature(handler).parameters.values())[1:]

        def fn(*args, **kwargs):
            return handler(get_synthesizer(), *args, **kwargs)
    else:
        def fn(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return handler(get_synthesizer(), **bound.arguments)
    signature = inspect.Signature([p.replace(default=gr.Progress()) if p.name == "progress" else p for p in form])
    functools.update_wrapper(fn, handler)
    fn.__signature__ = signature
    return fn


class Page:
    """The page under construction: the synthesizer getter, each room's widgets (page.synth,
    page.emotion, ...) and the widgets whose texts follow the language."""

    def __init__(self, get_synthesizer: Callable[[], Synthesizer]):
        self.get_synthesizer = get_synthesizer
        self.translatable: list[tuple[gr.components.Component, Callable[[str], dict]]] = []

    def tr(self, component, **kinds):
        """Register a component whose texts follow the language switch; kinds map an update
        argument (label, value, info, placeholder) to a strings key."""
        self.translatable.append((component, lambda lang: {arg: t(lang, key) for arg, key in kinds.items()}))
        return component

    def follows_language(self, component, make: Callable[[str], dict]):
        """Register a component with its own update per language (formatted labels, choices)."""
        self.translatable.append((component, make))
        return component

    def bind(self, handler, form: list[inspect.Parameter] | None = None):
        return bind(self.get_synthesizer, handler, form)

    def room(self, room_name: str, /, **widgets) -> SimpleNamespace:
        room = SimpleNamespace(**widgets)
        setattr(self, room_name, room)
        return room
