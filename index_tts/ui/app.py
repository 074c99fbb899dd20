"""The studio page: `build_ui(get_synthesizer) -> gr.Blocks`.

UI code only. Every handler is a small function that turns widget values into a service call
and the service's errors (ValidationError, NotReady) into `gr.Error`. Synthesis runs through the
Gradio queue one job at a time (concurrency id "engine"); light events (status, preview,
presets) bypass that limit so the page stays responsive while a job runs.
"""

from __future__ import annotations

import html
import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Callable

import gradio as gr

from index_tts.emotion import DEFAULT_WEIGHT, EMOTION_MODES, EMOTIONS, EmotionSpec, normalize_webui_vector
from index_tts.engines.base import GenerationParams
from index_tts.service import NotReady, Status, SynthesisRequest, Synthesizer, ValidationError
from index_tts.ui.strings import LANGUAGES, emotion_label, t

log = logging.getLogger(__name__)

PRESETS_FILE = Path(__file__).with_name("emotion_presets.json")
DEFAULTS = GenerationParams()
HISTORY_LIMIT = 50

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


def load_emotion_presets(path: Path = PRESETS_FILE) -> list[dict]:
    """The one-click presets, each with its 8 slider values in EMOTIONS order."""
    presets = json.loads(path.read_text(encoding="utf-8"))["presets"]
    for p in presets:
        unknown = set(p["vector"]) - set(EMOTIONS)
        if unknown:
            raise ValueError(f"emotion preset {p['id']!r} names unknown emotions {sorted(unknown)}")
        p["values"] = [float(p["vector"].get(e, 0.0)) for e in EMOTIONS]
    return presets


# ---------------------------------------------------------------------------------------------
# pure helpers (no widgets): status banner, request building


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


def _describe_emotion(spec: EmotionSpec, lang: str) -> str:
    if spec.mode == "vector" and spec.vector:
        top = sorted(zip(EMOTIONS, spec.vector), key=lambda kv: -kv[1])[:2]
        return ", ".join(f"{emotion_label(lang, e)} {v:.2f}" for e, v in top if v > 0) or "-"
    if spec.mode == "text":
        return (spec.text or "(text)")[:30]
    return spec.mode


# ---------------------------------------------------------------------------------------------
# the page


def build_ui(get_synthesizer: Callable[[], Synthesizer]) -> gr.Blocks:
    presets = load_emotion_presets()
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

        with gr.Tabs():
            with gr.Tab(t("en", "tab_synth"), id="tab_synth", elem_id="tab_synth") as tab_synth:
                with gr.Row():
                    with gr.Column(scale=1):
                        voice = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "voice_label"),
                                            elem_id="voice_audio", buttons=["download"]), label="voice_label")
                    with gr.Column(scale=2):
                        text = tr(gr.Textbox(lines=5, max_lines=20, label=t("en", "text_label"), placeholder=t("en", "text_placeholder"),
                                             elem_id="text_in"), label="text_label", placeholder="text_placeholder")
                        generate = tr(gr.Button(t("en", "generate"), variant="primary", elem_id="generate_btn"), value="generate")
                        output = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "output_label"), elem_id="out_audio",
                                             buttons=["download"]), label="output_label")
                        output_info = gr.Markdown("", elem_id="out_info")

                with tr(gr.Accordion(t("en", "emo_section"), open=True, elem_id="emo_section"), label="emo_section"):
                    emo_mode = gr.Radio(mode_choices("en"), value="same_as_voice", label=t("en", "emo_mode_label"), elem_id="emo_mode")
                    emo_presets_title = tr(gr.Markdown(t("en", "emo_presets_label"), elem_id="emo_presets_label"), value="emo_presets_label")
                    preset_buttons = []
                    with gr.Row(elem_classes="emo-preset-row"):
                        for p in presets:
                            preset_buttons.append(gr.Button(f"{p['en']} · {p['zh']}", size="sm", elem_id=f"emo_preset_{p['id']}"))
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
                    segments = gr.Dataframe(headers=t("en", "segments_headers").split("|"), datatype=["number", "str", "number"],
                                            interactive=False, wrap=True, elem_id="segment_preview", max_height=300)

                examples = gr.Examples(
                    examples=[[txt, mode, w, *vec, et] for txt, mode, w, vec, et in EXAMPLES],
                    inputs=[text, emo_mode, emo_weight, *sliders, emo_text],
                    label=t("en", "examples_label"),
                    elem_id="examples",
                    cache_examples=False,
                )

                with tr(gr.Accordion(t("en", "history_section"), open=True, elem_id="history_section"), label="history_section"):
                    history = gr.State([])
                    history_table = gr.Dataframe(headers=t("en", "history_headers").split("|"), interactive=False, wrap=True,
                                                 elem_id="history_table", max_height=240)
                    with gr.Row():
                        history_select = tr(gr.Dropdown([], label=t("en", "history_select"), elem_id="history_select"),
                                            label="history_select")
                        history_audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "history_audio"),
                                                    elem_id="history_audio", buttons=["download"]), label="history_audio")
                    history_files = tr(gr.File(file_count="multiple", interactive=False, label=t("en", "history_files"),
                                               elem_id="history_files"), label="history_files")

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
            rows = [[i + 1, s.text, s.n_tokens] for i, s in enumerate(segs)]
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

        # Parameter names and defaults here are what gradio_client callers of /synthesize see.
        def synthesize(voice, text, emo_mode="same_as_voice", emo_audio=None, emo_weight=DEFAULT_WEIGHT, emo_random=False,
                       happy=0.0, angry=0.0, sad=0.0, afraid=0.0, disgusted=0.0, melancholic=0.0, surprised=0.0, calm=0.0,
                       emo_text=None, do_sample=DEFAULTS.do_sample, temperature=DEFAULTS.temperature, top_p=DEFAULTS.top_p,
                       top_k=DEFAULTS.top_k, num_beams=DEFAULTS.num_beams, repetition_penalty=DEFAULTS.repetition_penalty,
                       length_penalty=DEFAULTS.length_penalty, max_mel_tokens=DEFAULTS.max_mel_tokens,
                       max_tokens_per_segment=DEFAULTS.max_text_tokens_per_segment,
                       interval_silence_ms=DEFAULTS.interval_silence_ms, seed=None, lang="en", history=None,
                       use_glossary=True, progress=gr.Progress()):
            synth = get_synthesizer()
            try:
                emotion = build_emotion(emo_mode, emo_weight, emo_random,
                                        [happy, angry, sad, afraid, disgusted, melancholic, surprised, calm], emo_text)
                generation = build_generation(do_sample, temperature, top_p, top_k, num_beams, repetition_penalty,
                                              length_penalty, max_mel_tokens, max_tokens_per_segment, interval_silence_ms, seed)
                request = SynthesisRequest(text=text if text is not None else "", voice=voice, emotion=emotion,
                                           generation=generation, emotion_audio=emo_audio,
                                           use_glossary=True if use_glossary is None else bool(use_glossary))
                result = synth.synthesize(request, lambda f, stage: progress(f, desc=stage))
            except (ValidationError, NotReady) as e:
                raise gr.Error(str(e), print_exception=False) from e
            except Exception as e:  # an engine bug: tell the user plainly, keep the trace in the log
                log.exception("synthesis failed")
                raise gr.Error(f"synthesis failed: {type(e).__name__}: {e}") from e
            lang = lang or "en"
            entry = {
                "time": datetime.now().strftime("%H:%M:%S"),
                "text": request.text.strip()[:60],
                "seconds": round(result.duration_s, 2),
                "emotion": _describe_emotion(emotion, lang),
                "path": str(result.path),
            }
            history = ([entry] + list(history or []))[:HISTORY_LIMIT]
            info = t(lang, "output_info", duration=result.duration_s, elapsed=result.elapsed_s, engine=result.engine,
                     name=result.path.name)
            if result.emotion_model:
                info += f" · {t(lang, 'emo_text_label')}: {result.emotion_model}"
            return (
                str(result.path),
                info,
                history,
                [[h["time"], h["text"], h["seconds"], h["emotion"], Path(h["path"]).name] for h in history],
                gr.update(choices=[(f"{h['time']} · {h['text'][:30]}", h["path"]) for h in history], value=None),
                [h["path"] for h in history],
            )

        synth_inputs = [voice, text, emo_mode, emo_audio, emo_weight, emo_random, *sliders, emo_text,
                        *generation_inputs, lang, history, use_glossary]
        generate.click(synthesize, synth_inputs, [output, output_info, history, history_table, history_select, history_files],
                       api_name="synthesize", concurrency_limit=1, concurrency_id="engine")

        def replay(path):
            return path or None

        history_select.change(replay, history_select, history_audio, api_visibility="private", **light)

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

        def switch_language(lang_value, text_value, max_tokens_value):
            updates = [gr.update(**make(lang_value)) for _, make in translatable]
            updates.append(gr.update(choices=mode_choices(lang_value), label=t(lang_value, "emo_mode_label")))
            updates += [gr.update(label=emotion_label(lang_value, e)) for e in EMOTIONS]
            updates.append(gr.update(label=t(lang_value, "tab_synth")))
            updates.append(gr.update(label=t(lang_value, "tab_presets")))
            updates.append(render_banner(get_synthesizer().status(), lang_value))
            updates += list(preview(text_value, max_tokens_value, lang_value))[1:]
            return updates

        lang.change(switch_language, [lang, text, max_tokens],
                    [c for c, _ in translatable] + [emo_mode, *sliders, tab_synth, tab_presets, banner, segments_note],
                    api_visibility="private", **light)

    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def mount_ui(app, get_synthesizer: Callable[[], Synthesizer], allowed_paths: list[str]):
    """Build the page and mount it at "/" of a FastAPI app (declare other routes first).

    allowed_paths: folders Gradio may serve files from (the data folder: outputs, presets).
    """
    return gr.mount_gradio_app(app, build_ui(get_synthesizer), path="/", allowed_paths=allowed_paths,
                               css=CSS, footer_links=["api"])
