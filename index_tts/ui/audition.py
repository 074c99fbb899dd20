"""The emotion audition, a section of the Synthesize tab: the text and voice above spoken in each
chosen emotion, each take playable as soon as it is done; "Use this" sets the emotion controls.

The service does the work (Synthesizer.audition, one queue place, take by take); this room only
turns its takes into streamed updates and keeps, per browser session, the event that cancels it.
"""

import threading

import gradio as gr

from index_tts.service import MAX_TAKES, Cancelled, Synthesizer, builtin_emotion_presets, pure_presets
from index_tts.ui import emotion, generation
from index_tts.ui.creator import emotion_choices, emotion_from_choice, preset_record
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import ENGINE, LIGHT, Page, reporter
from index_tts.ui.strings import t

PER_ROW = 4
DEFAULT_CHOICES = [f"builtin:{name}" for name, _ in pure_presets()]
# The cancel event of the audition running in each browser session (its session hash).
_running: dict[str, threading.Event] = {}


def choices(lang_value: str, users: list[dict]) -> list[tuple[str, str]]:
    return emotion_choices(builtin_emotion_presets(), users, lang_value, t(lang_value, "emo_choice_same"))


def _session(request) -> str:
    return getattr(request, "session_hash", None) or ""


@shows_errors
def run_audition(synth: Synthesizer, voice, text, chosen, lang_value, *generation_values, request: gr.Request = None,
                 progress=None):
    """Streams [info, take records, *take boxes, *take players]: first every box hidden, then
    one more take shown after each is done."""
    users = synth.list_emotion_presets()
    labels = {value: label for label, value in choices(lang_value, users)}
    chosen = list(chosen or [])
    pairs = [(labels.get(c, c), emotion_from_choice(c, builtin_emotion_presets(), users)) for c in chosen]
    records = [preset_record(c, builtin_emotion_presets(), users) for c in chosen]
    params = generation.from_form(dict(zip([p.name for p in generation.form()], generation_values)))
    cancel = threading.Event()
    takes = synth.audition(text or "", voice, pairs, generation=params, progress=reporter(progress), cancel=cancel)
    boxes, players = [gr.update(visible=False)] * MAX_TAKES, [gr.update(value=None)] * MAX_TAKES
    done, seed = 0, params.seed
    _running[_session(request)] = cancel
    try:
        yield ["", records, *boxes, *players]
        for take in takes:
            done, seed = done + 1, take.seed
            boxes = [*boxes[:take.index], gr.update(visible=True), *boxes[take.index + 1:]]
            players = [*players[:take.index], gr.update(value=str(take.path), label=f"{take.index + 1}. {take.label}"),
                       *players[take.index + 1:]]
            yield [t(lang_value, "aud_progress", done=done, total=len(pairs), seed=seed), records, *boxes, *players]
        yield [t(lang_value, "aud_done", total=len(pairs), seed=seed), records, *boxes, *players]
    except Cancelled:
        yield [t(lang_value, "aud_cancelled", done=done, total=len(pairs)), records, *boxes, *players]
    finally:
        _running.pop(_session(request), None)


def cancel_audition(lang_value, request: gr.Request = None):
    """Stop this session's audition after (or inside) the take being made."""
    running = _running.get(_session(request))
    if running is None:
        return gr.update()
    running.set()
    return t(lang_value, "aud_cancelling")


def use_take(records, index):
    """The emotion widgets set to take `index`'s emotion (emotion.restore's order)."""
    if not records or index >= len(records) or records[index] is None:
        return [gr.update()] * len(emotion.restore({}))
    return emotion.restore(records[index])


def refreshed(lang_value, users, current):
    """The choices in `lang_value` with the user's presets as they are now; what is ticked stays ticked."""
    offered = choices(lang_value, users or [])
    values = {value for _, value in offered}
    return gr.update(choices=offered, value=[c for c in current or [] if c in values])


def layout(page: Page):
    tr = page.tr
    boxes, players, uses = [], [], []
    with tr(gr.Accordion(t("en", "aud_section"), open=False, elem_id="aud_section"), label="aud_section"):
        tr(gr.Markdown(t("en", "aud_help"), elem_id="aud_help"), value="aud_help")
        chosen = tr(gr.CheckboxGroup(choices("en", []), value=DEFAULT_CHOICES, label=t("en", "aud_choices"), elem_id="aud_choices"),
                    label="aud_choices")
        with gr.Row():
            start = tr(gr.Button(t("en", "aud_start"), variant="primary", elem_id="aud_start_btn"), value="aud_start")
            cancel = tr(gr.Button(t("en", "aud_cancel"), variant="stop", elem_id="aud_cancel_btn"), value="aud_cancel")
        info = gr.Markdown("", elem_id="aud_info")
        records = gr.State([])
        for first in range(0, MAX_TAKES, PER_ROW):
            with gr.Row():
                for i in range(first, first + PER_ROW):
                    with gr.Column(visible=False, min_width=200, elem_id=f"aud_take_{i}") as box:
                        players.append(gr.Audio(type="filepath", interactive=False, label=f"{i + 1}", elem_id=f"aud_take_{i}_audio",
                                                buttons=["download"]))
                        uses.append(tr(gr.Button(t("en", "aud_use"), size="sm", elem_id=f"aud_use_{i}"), value="aud_use"))
                    boxes.append(box)
    page.room("audition", chosen=chosen, start=start, cancel=cancel, info=info, records=records, boxes=boxes, players=players,
              uses=uses)


def wire(page: Page, demo: gr.Blocks):
    a, s, e = page.audition, page.synth, page.emotion
    a.start.click(page.bind(run_audition), [s.voice, s.text, a.chosen, page.lang, *page.generation.inputs],
                        [a.info, a.records, *a.boxes, *a.players], api_name="audition", **ENGINE)
    a.cancel.click(cancel_audition, [page.lang], [a.info], api_visibility="private", **LIGHT)
    for i, use in enumerate(a.uses):
        use.click(lambda records, _i=i: use_take(records, _i), [a.records], e.restorable, api_visibility="private", **LIGHT)
    refresh = dict(fn=refreshed, inputs=[page.lang, e.users, a.chosen], outputs=[a.chosen], api_visibility="private", **LIGHT)
    e.users.change(**refresh)
    page.lang.change(**refresh)
