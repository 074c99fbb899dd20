"""The Dubbing tab: an SRT or WebVTT file (uploaded or pasted) voiced cue by cue onto one track,
with a fit mode, a cue table, per-cue play and regenerate, and the waveform with the cue slots.

UI only: the job, its files and its report are the service's (Synthesizer.create_dubbing,
regenerate_dub_cue, get_dubbing). A job id lives in the page's state; Cancel sets the running
job's cancel event (registered under a per-click token) and stops the wait."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import gradio as gr

from index_tts.fileio import atomic_write_bytes
from index_tts.service import (FIT_MODES, GenerationParams, RoleSetting, Synthesizer, TimedSegment, builtin_emotion_presets,
                               subtitle_roles, ValidationError)
from index_tts.ui.creator import VOICE_DEFAULT, emotion_choices, emotion_from_choice, waveform_svg
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import ENGINE, LIGHT, MAX_UI_ROLES, OUTPUT_FORMATS, Page, reporter
from index_tts.ui.strings import t

_CANCELS: dict[str, threading.Event] = {}   # click token -> the running job's cancel event


def _subtitles(file, pasted) -> bytes | str:
    if file:
        return Path(file).read_bytes()
    return pasted or ""


def detect_roles(file, pasted, lang_value, *current):
    """One row per role the subtitles use (WebVTT voices, `Role:` prefixes), keeping voices
    already chosen: for each of MAX_UI_ROLES rows [visible, role, voice], then a note."""
    try:
        source = _subtitles(file, pasted)
        names = subtitle_roles(source) if (source.strip() if isinstance(source, str) else source) else []
        note = t(lang_value, "dub_roles_found", roles=", ".join(names)) if names else ""
    except (ValidationError, OSError) as e:
        names, note = [], str(e)
    names = names[:MAX_UI_ROLES]
    previous = {current[2 * i]: current[2 * i + 1] for i in range(MAX_UI_ROLES) if current[2 * i]}
    updates = []
    for n in range(MAX_UI_ROLES):
        role = names[n] if n < len(names) else ""
        updates += [gr.update(visible=bool(role)), role, gr.update(value=previous.get(role))]
    return [*updates, note]


def new_token():
    return secrets.token_hex(8)


def cancel_job(token):
    if token in _CANCELS:
        _CANCELS[token].set()


def _view(synth: Synthesizer, result, lang_value):
    """[job id, track, info, waveform, zip, cue rows, cue number, cue audio] for a job."""
    rows = [[r["index"], r["start"], r["end"], r["role"], r["text"], r["target"], r["actual"], r["factor"], r["stretch"],
             r["overrun"]] for r in result.report]
    overruns = sum(1 for r in result.report if r["overrun"] > 0)
    info = t(lang_value, "dub_info", n=len(rows), rendered=result.rendered, overruns=overruns, job=result.job_id)
    marks = [TimedSegment(r["text"], r["start"], r["end"], f"#{r['index']}") for r in result.report]  # a band per slot
    svg = waveform_svg(result.track_path, marks, t(lang_value, "dub_wave_label"))
    zip_path = atomic_write_bytes(result.folder / f"dubbing-{result.job_id}.zip", synth.dubbing_zip(result.job_id))
    first = result.report[0]["index"]
    return (result.job_id, str(result.track_path), info, svg, str(zip_path), rows, gr.update(value=first, maximum=len(rows)),
            str(result.cue_paths[0]))


def _roles(voice, role_values) -> dict[str, RoleSetting] | None:
    """The roles given a voice ("*": the main voice for cues without one), or None: one voice."""
    roles = {role: RoleSetting(name) for role, name in zip(role_values[::2], role_values[1::2]) if role and name}
    if roles and voice:
        roles["*"] = RoleSetting(voice)
    return roles or None


@shows_errors
def dub(synth: Synthesizer, token, file, pasted, voice, fit, fmt, seed, lang_value, *role_values, progress=None):
    """Voice the subtitles as a new job (see _view for the outputs)."""
    cancel = _CANCELS[token] = threading.Event()
    try:
        roles = _roles(voice, role_values)
        generation = GenerationParams(seed=int(seed) if seed not in (None, "") else None)
        result = synth.create_dubbing(_subtitles(file, pasted), voice=None if roles else (voice or ""), roles=roles,
                                      fit=fit or "natural", output_format=fmt or "wav", generation=generation,
                                      progress=reporter(progress), cancel=cancel)
    finally:
        _CANCELS.pop(token, None)
    return _view(synth, result, lang_value)


@shows_errors
def regenerate_cue(synth: Synthesizer, token, job_id, cue, emotion_choice, lang_value, progress=None):
    """One cue again: a new seed, and the chosen emotion unless it is the role's own."""
    if not job_id:
        raise ValidationError("job", t(lang_value, "dub_no_job"))
    emotion = None
    if emotion_choice and emotion_choice != VOICE_DEFAULT:
        emotion = emotion_from_choice(emotion_choice, builtin_emotion_presets(), synth.list_emotion_presets(), None)
    cancel = _CANCELS[token] = threading.Event()
    try:
        result = synth.regenerate_dub_cue(job_id, int(cue or 0), seed=secrets.randbelow(2**32), emotion=emotion,
                                          progress=reporter(progress), cancel=cancel)
    finally:
        _CANCELS.pop(token, None)
    view = list(_view(synth, result, lang_value))
    view[6], view[7] = gr.update(value=int(cue)), str(result.cue_paths[[r["index"] for r in result.report].index(int(cue))])
    return tuple(view)


def play_cue(synth: Synthesizer, job_id, cue):
    if not job_id or not cue:
        return None
    result = synth.get_dubbing(job_id)
    numbers = [r["index"] for r in result.report]
    return str(result.cue_paths[numbers.index(int(cue))]) if int(cue) in numbers else None


def pick_row(event: gr.SelectData):
    """A click in the cue table selects that row's cue."""
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    return gr.update(value=int(row) + 1)


def role_row(page: Page, n: int):
    def label(key):
        return lambda lang: {"label": t(lang, key, n=n + 1)}

    with gr.Row(visible=False) as row:
        name = page.follows_language(gr.Textbox(label=t("en", "dlg_role", n=n + 1), interactive=False, elem_id=f"dub_role_{n}_name",
                                                min_width=100), label("dlg_role"))
        voice = page.follows_language(gr.Dropdown([], label=t("en", "dlg_role_voice", n=n + 1), elem_id=f"dub_role_{n}_voice",
                                                  min_width=140), label("dlg_role_voice"))
    return row, name, voice


def layout(page: Page):
    tr = page.tr
    with gr.Row():
        with gr.Column(scale=3):
            file = tr(gr.File(label=t("en", "dub_file"), file_types=[".srt", ".vtt"], type="filepath", elem_id="dub_file"),
                      label="dub_file")
            pasted = tr(gr.Textbox(lines=6, max_lines=30, label=t("en", "dub_paste"), placeholder=t("en", "dub_paste_placeholder"),
                                   elem_id="dub_paste"), label="dub_paste", placeholder="dub_paste_placeholder")
        with gr.Column(scale=2):
            voice = tr(gr.Dropdown([], label=t("en", "dub_voice"), elem_id="dub_voice"), label="dub_voice")
            tr(gr.Markdown(t("en", "dub_roles_label"), elem_id="dub_roles_label"), value="dub_roles_label")
            rows = [role_row(page, n) for n in range(MAX_UI_ROLES)]
            roles_note = gr.Markdown("", elem_id="dub_roles_note")
    with gr.Row():
        fit = tr(gr.Radio([(t("en", f"dub_fit_{m}"), m) for m in FIT_MODES], value="natural", label=t("en", "dub_fit"),
                          info=t("en", "dub_fit_info"), elem_id="dub_fit"), label="dub_fit", info="dub_fit_info")
        fmt = tr(gr.Radio(OUTPUT_FORMATS, value="wav", label=t("en", "out_format"), elem_id="dub_format"), label="out_format")
        seed = tr(gr.Number(value=None, precision=0, label=t("en", "seed"), elem_id="dub_seed", minimum=0), label="seed")
    with gr.Row():
        generate = tr(gr.Button(t("en", "dub_generate"), variant="primary", elem_id="dub_generate_btn"), value="dub_generate")
        cancel = tr(gr.Button(t("en", "dub_cancel"), variant="stop", elem_id="dub_cancel_btn"), value="dub_cancel")
    track = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "dub_track"), elem_id="dub_track", buttons=["download"]),
               label="dub_track")
    info = gr.Markdown("", elem_id="dub_info")
    wave = gr.HTML("", elem_id="dub_wave")
    zip_file = tr(gr.File(label=t("en", "dub_zip"), interactive=False, elem_id="dub_zip"), label="dub_zip")
    cues = gr.Dataframe(headers=t("en", "dub_cues_headers").split("|"), interactive=False, wrap=True, elem_id="dub_cues",
                        max_height=300)
    with gr.Row():
        cue = tr(gr.Number(value=1, precision=0, minimum=1, label=t("en", "dub_cue"), elem_id="dub_cue"), label="dub_cue")
        emotion = page.follows_language(
            gr.Dropdown(emotion_choices(builtin_emotion_presets(), [], "en", t("en", "emo_choice_same"), t("en", "emo_choice_voice_default")),
                        value=VOICE_DEFAULT, label=t("en", "dub_cue_emotion"), elem_id="dub_cue_emotion"),
            lambda lang: {"label": t(lang, "dub_cue_emotion")})
        regenerate = tr(gr.Button(t("en", "dub_regenerate"), elem_id="dub_regenerate_btn"), value="dub_regenerate")
    cue_audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "dub_cue_audio"), elem_id="dub_cue_audio"),
                   label="dub_cue_audio")
    page.room("dubbing", file=file, pasted=pasted, voice=voice, rows=rows, roles_note=roles_note, fit=fit, fmt=fmt, seed=seed,
              generate=generate, cancel=cancel, track=track, info=info, wave=wave, zip_file=zip_file, cues=cues, cue=cue,
              emotion=emotion, regenerate=regenerate, cue_audio=cue_audio, job=gr.State(""), token=gr.State(""),
              role_voices=[voice, *[r[2] for r in rows]])


def wire(page: Page, demo: gr.Blocks):
    d = page.dubbing
    role_values = [w for row in d.rows for w in row[1:]]
    for source in (d.file, d.pasted):
        source.change(detect_roles, [d.file, d.pasted, page.lang, *role_values], [*[w for row in d.rows for w in row], d.roles_note],
                      api_visibility="private", **LIGHT)
    outputs = [d.job, d.track, d.info, d.wave, d.zip_file, d.cues, d.cue, d.cue_audio]
    running = [
        d.generate.click(new_token, None, d.token, api_visibility="private", **LIGHT).then(
            page.bind(dub), [d.token, d.file, d.pasted, d.voice, d.fit, d.fmt, d.seed, page.lang, *role_values], outputs,
            api_name="dubbing", **ENGINE),
        d.regenerate.click(new_token, None, d.token, api_visibility="private", **LIGHT).then(
            page.bind(regenerate_cue), [d.token, d.job, d.cue, d.emotion, page.lang], outputs, api_name="dubbing_regenerate_cue",
            **ENGINE),
    ]
    d.cancel.click(cancel_job, d.token, None, cancels=running, api_visibility="private", **LIGHT)
    d.cue.change(page.bind(play_cue), [d.job, d.cue], d.cue_audio, api_visibility="private", **LIGHT)
    d.cues.select(pick_row, None, d.cue, api_visibility="private", **LIGHT)
