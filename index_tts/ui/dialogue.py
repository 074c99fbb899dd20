"""The Dialogue tab: a `Role: line` script, a voice and an emotion per role, one mixed file with
its per-line clips and subtitles."""

from __future__ import annotations

import gradio as gr

from index_tts.service import RoleSetting, Synthesizer, ValidationError, builtin_emotion_presets, parse_script, roles_of
from index_tts.ui.creator import VOICE_DEFAULT, emotion_choices, emotion_from_choice, waveform_svg
from index_tts.ui.errors import shows_errors
from index_tts.ui.generation import whole
from index_tts.ui.history import history_view
from index_tts.ui.page import ENGINE, LIGHT, MAX_UI_ROLES, OUTPUT_FORMATS, Page, reporter
from index_tts.ui.strings import t

KEEP = "keep"   # the line emotion dropdown's "keep the line's emotion"


def detect_roles(script, lang_value, *current):
    """One row per role of the script, keeping choices already made for a role: for each of
    MAX_UI_ROLES rows [visible, role, voice, emotion], then a note."""
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


def dialogue_view(synth: Synthesizer, result, lang_value, info: str = ""):
    """[audio, info, waveform, clips zip, subtitles, line rows, history table, history choices,
    the dialogue's history id] of a DialogueResult."""
    rows = [[i + 1, r, v, text_value, round(s, 2), round(e, 2), seed]
            for i, ((r, v, text_value, s, e), seed) in enumerate(zip(result.lines, result.seeds))]
    info = (info + " " if info else "") + t(lang_value, "dlg_info", n=len(result.lines), duration=result.duration_s,
                                             name=result.path.name)
    svg = waveform_svg(result.path, result.timeline, t(lang_value, "out_wave_label"))
    table, select, _ = history_view(synth, lang_value, result.history_id)
    return str(result.path), info, svg, str(result.zip_path), str(result.srt_path), rows, table, select, result.history_id


@shows_errors
def voice_dialogue(synth: Synthesizer, script, pause_ms, fmt, lang_value, *role_values, progress=None):
    """Voice the script; role_values are MAX_UI_ROLES triples (role, voice name, emotion choice).
    dialogue_view's outputs."""
    users = synth.list_emotion_presets()
    voices = {v.name: v for v in synth.list_voices()[0]}
    roles = {}
    for n in range(MAX_UI_ROLES):
        role, voice_name, choice = role_values[3 * n: 3 * n + 3]
        if role:
            default = voices[voice_name].default_emotion if voice_name in voices else None
            roles[role] = RoleSetting(voice_name or "", emotion_from_choice(choice or VOICE_DEFAULT, builtin_emotion_presets(), users, default))
    result = synth.compose_dialogue(script or "", roles, pause_ms=whole(pause_ms, "pause_ms"), output_format=fmt or "wav",
                                    progress=reporter(progress))
    return dialogue_view(synth, result, lang_value)


@shows_errors
def regenerate_line(synth: Synthesizer, entry_id, line, seed, choice, lang_value, progress=None):
    """Voice one line of the dialogue shown again: a new seed (empty: a fresh one) and the chosen
    emotion (KEEP: the line's own); the other lines are kept. dialogue_view's outputs."""
    if not entry_id:
        raise gr.Error(t(lang_value, "dlg_regen_none"), print_exception=False)
    empty = seed is None or seed == "" or (isinstance(seed, float) and seed != seed)
    emotion = None if choice in (None, "", KEEP) else emotion_from_choice(choice, builtin_emotion_presets(),
                                                                           synth.list_emotion_presets())
    number = whole(line, "line")
    result = synth.regenerate_line(entry_id, number, seed=None if empty else whole(seed, "seed"), emotion=emotion,
                                   progress=reporter(progress))
    return dialogue_view(synth, result, lang_value, t(lang_value, "dlg_regen_info", line=number, kept=len(result.lines) - 1))


def regen_choices(lang_value: str, users: list[dict]) -> list[tuple[str, str]]:
    """The line emotion dropdown: keep the line's, or any emotion a role may have."""
    return [(t(lang_value, "dlg_regen_keep"), KEEP), *emotion_choices(builtin_emotion_presets(), users, lang_value,
                                                                      t(lang_value, "emo_choice_same"))]


def refreshed(lang_value, users, current):
    """The line emotion dropdown in `lang_value` with the user's presets as they are now."""
    offered = regen_choices(lang_value, users or [])
    return gr.update(choices=offered, value=current if current in {value for _, value in offered} else KEEP)


def role_row(page: Page, n: int):
    def label(key):
        return lambda lang: {"label": t(lang, key, n=n + 1)}

    with gr.Row(visible=False) as row:
        name = page.follows_language(gr.Textbox(label=t("en", "dlg_role", n=n + 1), interactive=False, elem_id=f"dlg_role_{n}_name",
                                                min_width=100), label("dlg_role"))
        voice = page.follows_language(gr.Dropdown([], label=t("en", "dlg_role_voice", n=n + 1), elem_id=f"dlg_role_{n}_voice",
                                                  min_width=140), label("dlg_role_voice"))
        emotion = page.follows_language(gr.Dropdown(emotion_choices(builtin_emotion_presets(), [], "en", t("en", "emo_choice_same"),
                                                                    t("en", "emo_choice_voice_default")),
                                                    value=VOICE_DEFAULT, label=t("en", "dlg_role_emotion", n=n + 1),
                                                    elem_id=f"dlg_role_{n}_emotion", min_width=140), label("dlg_role_emotion"))
    return row, name, voice, emotion


def layout(page: Page):
    tr = page.tr
    with gr.Row():
        with gr.Column(scale=3):
            script = tr(gr.Textbox(lines=8, max_lines=40, label=t("en", "dlg_script"), placeholder=t("en", "dlg_script_placeholder"),
                                   elem_id="dlg_script"), label="dlg_script", placeholder="dlg_script_placeholder")
        with gr.Column(scale=2):
            tr(gr.Markdown(t("en", "dlg_roles_label"), elem_id="dlg_roles_label"), value="dlg_roles_label")
            rows = [role_row(page, n) for n in range(MAX_UI_ROLES)]
            roles_note = gr.Markdown("", elem_id="dlg_roles_note")
    with gr.Row():
        pause = tr(gr.Slider(0, 3000, value=400, step=50, label=t("en", "dlg_pause"), elem_id="dlg_pause"), label="dlg_pause")
        fmt = tr(gr.Radio(OUTPUT_FORMATS, value="wav", label=t("en", "out_format"), elem_id="dlg_format"), label="out_format")
        generate = tr(gr.Button(t("en", "dlg_generate"), variant="primary", elem_id="dlg_generate_btn"), value="dlg_generate")
    audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "dlg_audio"), elem_id="dlg_audio", buttons=["download"]),
               label="dlg_audio")
    info = gr.Markdown("", elem_id="dlg_info")
    wave = gr.HTML("", elem_id="dlg_wave")
    with gr.Row():
        zip_file = tr(gr.File(label=t("en", "dlg_zip"), interactive=False, elem_id="dlg_zip"), label="dlg_zip")
        srt = tr(gr.File(label=t("en", "dlg_srt"), interactive=False, elem_id="dlg_srt"), label="dlg_srt")
    lines = gr.Dataframe(headers=t("en", "dlg_lines_headers").split("|"), interactive=False, wrap=True, elem_id="dlg_lines",
                         max_height=300)
    entry = gr.State("")   # the history id of the dialogue shown
    with gr.Row(equal_height=True):
        line = tr(gr.Number(1, precision=0, minimum=1, label=t("en", "dlg_regen_line"), elem_id="dlg_regen_line", min_width=100),
                  label="dlg_regen_line")
        seed = tr(gr.Number(None, precision=0, label=t("en", "dlg_regen_seed"), elem_id="dlg_regen_seed", min_width=140),
                  label="dlg_regen_seed")
        line_emotion = page.follows_language(gr.Dropdown(regen_choices("en", []), value=KEEP, label=t("en", "dlg_regen_emotion"),
                                                         elem_id="dlg_regen_emotion", min_width=180),
                                             lambda lang: {"label": t(lang, "dlg_regen_emotion")})
        regen = tr(gr.Button(t("en", "dlg_regen"), elem_id="dlg_regen_btn", min_width=160), value="dlg_regen")
    page.room("dialogue", script=script, rows=rows, roles_note=roles_note, pause=pause, fmt=fmt, generate=generate, audio=audio,
              info=info, wave=wave, zip_file=zip_file, srt=srt, lines=lines, entry=entry, line=line, seed=seed,
              line_emotion=line_emotion, regen=regen, role_voices=[r[2] for r in rows], role_emotions=[r[3] for r in rows])


def wire(page: Page, demo: gr.Blocks):
    d, h = page.dialogue, page.history
    role_values = [w for row in d.rows for w in row[1:]]
    d.script.change(detect_roles, [d.script, page.lang, *role_values], [*[w for row in d.rows for w in row], d.roles_note],
                    api_visibility="private", **LIGHT)
    shown = [d.audio, d.info, d.wave, d.zip_file, d.srt, d.lines, h.table, h.select, d.entry]
    d.generate.click(page.bind(voice_dialogue), [d.script, d.pause, d.fmt, page.lang, *role_values], shown, api_name="dialogue",
                     **ENGINE)
    d.regen.click(page.bind(regenerate_line), [d.entry, d.line, d.seed, d.line_emotion, page.lang], shown,
                  api_name="dialogue_line", **ENGINE)
    refresh = dict(fn=refreshed, inputs=[page.lang, page.emotion.users, d.line_emotion], outputs=[d.line_emotion],
                   api_visibility="private", **LIGHT)
    page.emotion.users.change(**refresh)
    page.lang.change(**refresh)
