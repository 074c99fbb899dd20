"""The Synthesize tab: a voice, a text, an emotion and settings in; speech, its timeline and its
subtitles out. The emotion, generation, glossary, segment preview and history sections are
rooms of their own, placed here."""

from __future__ import annotations

import gradio as gr

from index_tts.service import DEFAULT_WEIGHT, DialogueResult, SynthesisRequest, Synthesizer
from index_tts.ui import audition, emotion, generation, glossary, history, model, status
from index_tts.ui.creator import waveform_svg
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import ENGINE, OUTPUT_FORMATS, Page, fill, param, reporter
from index_tts.ui.strings import t

# /synthesize's parameters, in the order of its inputs (gradio_client callers see these names).
FORM = [param("voice"), param("text"), *emotion.FORM, *generation.form(), param("lang", "en"), param("use_glossary", True),
        param("output_format", "wav"), *model.FORM, param("duration", None), param("progress", None)]

# (text, emotion mode, weight, 8 slider values, emotion description) - filled by a click.
EXAMPLES = [
    ["Welcome to IndexTTS Studio. Give me any voice and I will read your text in it.", "same_as_voice", DEFAULT_WEIGHT, [0.0] * 8, ""],
    ["I can't believe you did that again! How many times do I have to tell you?", "vector", 0.8, [0, 0.8, 0, 0, 0.2, 0, 0, 0], ""],
    ["我们终于到了海边，阳光和海风都刚刚好，真是太开心了！", "vector", 0.7, [0.7, 0, 0, 0, 0, 0, 0.3, 0], ""],
    ["He looked at the empty chair for a long time, and then he quietly closed the door.", "text", 0.6, [0.0] * 8, "quiet, heavy-hearted sadness"],
    ["别出声……你听到了吗？门外好像有人。", "vector", 0.75, [0, 0, 0, 0.8, 0, 0, 0.2, 0], ""],
]


def result_view(synth: Synthesizer, result, lang_value):
    """[audio, info, segment rows, waveform, subtitles, history table, history choices] of a
    SynthesisResult, or of a DialogueResult (a regenerated dialogue: no segment rows)."""
    table, select, _ = history.history_view(synth, lang_value, result.history_id)
    if isinstance(result, DialogueResult):
        info = t(lang_value, "dlg_info", n=len(result.lines), duration=result.duration_s, name=result.path.name)
        return str(result.path), info, [], "", str(result.srt_path), table, select
    info = t(lang_value, "output_info", duration=result.duration_s, elapsed=result.elapsed_s, engine=result.engine, name=result.path.name)
    if result.emotion_model:
        info += f" · {t(lang_value, 'emo_text_label')}: {result.emotion_model}"
    rows = [[i + 1, s.text, round(s.start_s, 2), round(s.end_s, 2), s.emotion] for i, s in enumerate(result.timeline)]
    svg = waveform_svg(result.path, result.timeline, t(lang_value, "out_wave_label"))
    return str(result.path), info, rows, svg, str(result.srt_path) if result.srt_path else None, table, select


@shows_errors
def synthesize(synth: Synthesizer, progress=None, **form):
    """The Generate button and /synthesize: FORM's values by name (defaults for what is missing)."""
    values = fill(FORM, form)
    request = SynthesisRequest(text=values["text"] if values["text"] is not None else "", voice=values["voice"],
                               emotion=emotion.from_form(values), generation=generation.from_form(values),
                               emotion_audio=values["emo_audio"],
                               use_glossary=True if values["use_glossary"] is None else bool(values["use_glossary"]),
                               output_format=values["output_format"] or "wav", model=values["model"] or None,
                               language=values["language"] or "auto", duration=values["duration"] or None)
    return result_view(synth, synth.synthesize(request, reporter(progress)), values["lang"] or "en")


@shows_errors
def regenerate(synth: Synthesizer, entry_id, lang_value, progress=None):
    """Voice a history entry (speech or dialogue) again with its saved request; Synthesize's outputs."""
    if not entry_id:
        raise gr.Error(t(lang_value, "history_none"), print_exception=False)
    return result_view(synth, synth.regenerate(entry_id, reporter(progress)), lang_value)


def layout(page: Page):
    """At 1366x768 the voice, the text, the one-click presets and Generate fit on one screen:
    the voice and the model on the left; text, presets and Generate on the right, the result below them; the
    rest of the emotion controls, the audition and the settings further down."""
    tr = page.tr
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            voice = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "voice_label"), elem_id="voice_audio",
                                buttons=["download"]), label="voice_label")
            voice_pick = tr(gr.Radio([], label=t("en", "voice_pick"), elem_id="voice_pick"), label="voice_pick")
            model.layout(page)
            # "say this in exactly 3.2 s": empty (or 0) speaks at the natural pace
            duration = tr(gr.Number(None, label=t("en", "duration_label"), info=t("en", "duration_info"), minimum=0,
                                    elem_id="target_duration"), label="duration_label", info="duration_info")
        with gr.Column(scale=2):
            text = tr(gr.Textbox(lines=4, max_lines=20, label=t("en", "text_label"), placeholder=t("en", "text_placeholder"),
                                 elem_id="text_in"), label="text_label", placeholder="text_placeholder")
            buttons = emotion.preset_buttons(page)
            with gr.Row(equal_height=True):
                generate = tr(gr.Button(t("en", "generate"), variant="primary", elem_id="generate_btn", scale=1, min_width=160),
                              value="generate")
                generate_on_click = tr(gr.Checkbox(False, label=t("en", "gen_on_click"), elem_id="gen_on_click", scale=1,
                                                   min_width=160), label="gen_on_click")
                out_format = tr(gr.Radio(OUTPUT_FORMATS, value="wav", label=t("en", "out_format"), elem_id="out_format", scale=2),
                                label="out_format")
            output = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "output_label"), elem_id="out_audio",
                                 buttons=["download"]), label="output_label")
            output_info = gr.Markdown("", elem_id="out_info")
            out_wave = gr.HTML("", elem_id="out_wave")
            out_srt = tr(gr.File(label=t("en", "out_srt"), interactive=False, elem_id="out_srt"), label="out_srt")
            with tr(gr.Accordion(t("en", "out_segments_label"), open=True, elem_id="out_segments_section"), label="out_segments_label"):
                out_segments = gr.Dataframe(headers=t("en", "out_segments_headers").split("|"),
                                            datatype=["number", "str", "number", "number", "str"], interactive=False, wrap=True,
                                            elem_id="out_segments", max_height=300)
            tr(gr.Markdown(t("en", "tags_help"), elem_id="tags_help"), value="tags_help")
    page.room("synth", voice=voice, voice_pick=voice_pick, duration=duration, text=text, out_format=out_format, generate=generate,
              generate_on_click=generate_on_click, output=output, output_info=output_info, out_wave=out_wave, out_srt=out_srt,
              out_segments=out_segments)
    emo = emotion.layout(page, buttons)
    audition.layout(page)
    generation.layout(page)
    glossary.layout(page)
    status.layout(page)
    gr.Examples(examples=[[txt, mode, w, *vec, et] for txt, mode, w, vec, et in EXAMPLES],
                inputs=[text, emo.mode, emo.weight, *emo.sliders, emo.text], label=t("en", "examples_label"), elem_id="examples",
                cache_examples=False)
    history.layout(page)


def wire(page: Page, demo: gr.Blocks):
    s, h = page.synth, page.history
    s.result_outputs = [s.output, s.output_info, s.out_segments, s.out_wave, s.out_srt, h.table, h.select]
    inputs = [s.voice, s.text, *page.emotion.inputs, *page.generation.inputs, page.lang, page.glossary.use, s.out_format,
              *page.model.inputs, s.duration]
    s.generate.click(page.bind(synthesize, FORM), inputs, s.result_outputs, api_name="synthesize", **ENGINE)
    h.regen.click(page.bind(regenerate), [h.select, page.lang], s.result_outputs, api_name="regenerate", **ENGINE)
    for room in (emotion, audition, glossary, status, history, model):
        room.wire(page, demo)
