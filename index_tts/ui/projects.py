"""The Projects tab: a book (text, Markdown or EPUB; uploaded or pasted) as a long-form project,
its chapters, its voice and emotion defaults and per-chapter overrides; a render that runs in the
service's background with progress overall and per chapter, paused, cancelled and resumed; and
the export (chapter files, the audiobook with chapter markers, its chapter SRT) to download."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from index_tts.service import NotReady, Synthesizer, builtin_emotion_presets
from index_tts.ui.creator import SAME_AS_VOICE, emotion_choices, emotion_from_choice
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import LIGHT, OUTPUT_FORMATS, Page
from index_tts.ui.strings import t

PROJECT_DEFAULT = "project"     # a chapter choice: the project's own voice or emotion


def emotion_dropdown_choices(synth: Synthesizer, lang_value: str, project_default: bool = False):
    choices = emotion_choices(builtin_emotion_presets(), synth.list_emotion_presets(), lang_value, t(lang_value, "emo_choice_same"))
    return ([(t(lang_value, "prj_from_project"), PROJECT_DEFAULT)] if project_default else []) + choices


def choice_of(synth: Synthesizer, spec, project_default: bool = False) -> str:
    """The dropdown choice meaning `spec` (None: the project's), or "same as voice" when none does."""
    if spec is None and project_default:
        return PROJECT_DEFAULT
    users = synth.list_emotion_presets()
    for _, value in emotion_choices(builtin_emotion_presets(), users, "en", ""):
        if emotion_from_choice(value, builtin_emotion_presets(), users) == spec:
            return value
    return SAME_AS_VOICE


def progress_html(progress, lang_value: str) -> str:
    if progress is None:
        return ""
    total = max(progress.total, 1)
    rows = "".join(f"<div class='prj-ch'><span>{i + 1}. {html.escape(c.title)}</span> <b>{c.done}/{c.total}</b>"
                   f"{_bar(c.done / max(c.total, 1))}</div>" for i, c in enumerate(progress.chapters))
    state = t(lang_value, f"prj_state_{progress.state}")
    detail = html.escape(progress.error or progress.message)
    return (f"<div class='prj-progress' data-state='{progress.state}'><div><b>{state}</b> · "
            f"<span class='prj-count'>{progress.done}/{progress.total}</span> {t(lang_value, 'prj_segments')} · {detail}</div>"
            f"{_bar(progress.done / total)}{rows}</div>")


def _bar(fraction: float) -> str:
    return (f"<div class='bar' style='height:6px;background:#e5e7eb;border-radius:3px;margin:2px 0 6px'>"
            f"<div style='width:{100 * fraction:.0f}%;height:6px;background:#4a7fd4;border-radius:3px'></div></div>")


def chapter_rows(project, progress) -> list[list]:
    counts = {i: (c.done, c.total) for i, c in enumerate(progress.chapters)} if progress else {}
    return [[i + 1, c.title, c.voice or "", "✓" if c.emotion else "", *counts.get(i, ("", ""))]
            for i, c in enumerate(project.chapters)]


def _progress(synth: Synthesizer, name: str):
    try:
        return synth.project_progress(name)
    except NotReady:
        return None


@shows_errors
def show_project(synth: Synthesizer, name, lang_value):
    """[chapter table, progress, chapter choices, voice, emotion, seed, message, timer]."""
    if not name:
        return [[], "", gr.update(choices=[], value=None), gr.update(), gr.update(), gr.update(), "", gr.Timer(active=False)]
    project, progress = synth.get_project(name), _progress(synth, name)
    chapters = [(f"{i + 1}. {c.title}", i) for i, c in enumerate(project.chapters)]
    note = t(lang_value, "prj_summary", title=project.title, source=project.source, n=len(project.chapters))
    return [chapter_rows(project, progress), progress_html(progress, lang_value), gr.update(choices=chapters, value=0),
            gr.update(value=project.voice), gr.update(value=choice_of(synth, project.emotion)), project.seed, note,
            gr.Timer(active=bool(progress and progress.state == "rendering"))]


def voices_and_projects(synth: Synthesizer, selected=None):
    """The tab opened: [the voice choices, the project list] brought up to date."""
    names = synth.list_projects()
    voices = [v.name for v in synth.list_voices()[0]]
    if selected in names and synth.get_project(selected).voice not in voices:
        voices.append(synth.get_project(selected).voice)    # a file the project keeps itself
    return gr.update(choices=voices), gr.update(choices=voices), gr.update(choices=names, value=selected if selected in names else None)


@shows_errors
def create(synth: Synthesizer, name, upload, pasted, voice, emotion_choice, seed, lang_value):
    """Import the upload (or the pasted text) as a new project: [project list, message]."""
    if upload:
        filename, data = Path(upload).name, Path(upload).read_bytes()
    else:
        # Pasted text is Markdown (`# heading` starts a chapter), titled after the project.
        filename, data = f"{(name or '').strip() or 'pasted'}.md", (pasted or "").encode("utf-8")
    spec = emotion_from_choice(emotion_choice or SAME_AS_VOICE, builtin_emotion_presets(), synth.list_emotion_presets())
    project = synth.create_project((name or "").strip(), filename, data, voice=voice or "", emotion=spec,
                                   seed=int(seed) if seed is not None else 0)
    message = t(lang_value, "prj_created", name=project.name, n=len(project.chapters))
    return gr.update(choices=synth.list_projects(), value=project.name), message


@shows_errors
def save_defaults(synth: Synthesizer, name, voice, emotion_choice, seed, lang_value):
    _need(name, lang_value)
    spec = emotion_from_choice(emotion_choice or SAME_AS_VOICE, builtin_emotion_presets(), synth.list_emotion_presets())
    synth.update_project(name, voice=voice or "", emotion=spec, seed=int(seed) if seed is not None else 0)
    return t(lang_value, "prj_saved")


@shows_errors
def pick_chapter(synth: Synthesizer, name, index):
    """[title, text, voice override, emotion override] of the chapter picked."""
    if not name or index is None:
        return "", "", PROJECT_DEFAULT, PROJECT_DEFAULT
    chapter = synth.get_project(name).chapters[int(index)]
    return chapter.title, chapter.text, chapter.voice or PROJECT_DEFAULT, choice_of(synth, chapter.emotion, project_default=True)


@shows_errors
def save_chapter(synth: Synthesizer, name, index, title, text, voice, emotion_choice, lang_value):
    _need(name, lang_value)
    emotion = None if emotion_choice in (None, PROJECT_DEFAULT) else \
        emotion_from_choice(emotion_choice, builtin_emotion_presets(), synth.list_emotion_presets())
    synth.update_chapter(name, int(index or 0), title=title, text=text or "",
                         voice=None if voice in (None, "", PROJECT_DEFAULT) else voice, emotion=emotion)
    return t(lang_value, "prj_saved")


@shows_errors
def render(synth: Synthesizer, name, lang_value):
    """Start (or resume) the render in the service's background: [progress, message, timer on]."""
    _need(name, lang_value)
    progress = synth.start_project_render(name)
    return progress_html(progress, lang_value), t(lang_value, "prj_rendering"), gr.Timer(active=True)


def poll(synth: Synthesizer, name, lang_value):
    """A timer tick while a render runs: [progress, chapter table, timer (off once it ends)]."""
    if not name:
        return "", gr.update(), gr.Timer(active=False)
    progress = _progress(synth, name)
    running = bool(progress and progress.state == "rendering")
    return progress_html(progress, lang_value), chapter_rows(synth.get_project(name), progress), gr.Timer(active=running)


def tick(synth: Synthesizer, name, lang_value):
    """poll(), and the render's hint cleared once it ends (the progress then says how it ended)."""
    html_value, rows, timer = poll(synth, name, lang_value)
    return html_value, rows, timer, gr.update() if timer.active else ""


@shows_errors
def pause(synth: Synthesizer, name, lang_value):
    _need(name, lang_value)
    synth.pause_project(name)
    return t(lang_value, "prj_pausing")


@shows_errors
def cancel(synth: Synthesizer, name, lang_value):
    _need(name, lang_value)
    synth.cancel_project(name)
    return t(lang_value, "prj_cancelling")


@shows_errors
def export(synth: Synthesizer, name, fmt, lang_value):
    """[the files to download, the audiobook to play, message]."""
    _need(name, lang_value)
    result = synth.export_project(name, output_format=fmt or "mp3")
    files = [str(p) for p in (result.book, result.srt, *result.chapter_files)]
    return files, str(result.book), t(lang_value, "prj_exported", n=len(result.chapter_files), duration=result.duration_s)


@shows_errors
def delete(synth: Synthesizer, name, lang_value):
    _need(name, lang_value)
    synth.delete_project(name)
    return gr.update(choices=synth.list_projects(), value=None), t(lang_value, "prj_deleted", name=name)


def _need(name, lang_value):
    if not name:
        raise gr.Error(t(lang_value, "prj_none"), print_exception=False)


def layout(page: Page):
    tr = page.tr
    with gr.Row():
        with gr.Column(scale=2):
            with tr(gr.Accordion(t("en", "prj_new"), open=True, elem_id="prj_new"), label="prj_new"):
                name = tr(gr.Textbox(label=t("en", "prj_name"), max_lines=1, elem_id="prj_name"), label="prj_name")
                upload = tr(gr.File(label=t("en", "prj_upload"), file_types=[".txt", ".md", ".markdown", ".epub"], type="filepath",
                                    elem_id="prj_upload"), label="prj_upload")
                pasted = tr(gr.Textbox(lines=6, max_lines=20, label=t("en", "prj_paste"), placeholder=t("en", "prj_paste_placeholder"),
                                       elem_id="prj_paste"), label="prj_paste", placeholder="prj_paste_placeholder")
                create_btn = tr(gr.Button(t("en", "prj_create"), variant="primary", elem_id="prj_create"), value="prj_create")
            project = tr(gr.Dropdown([], label=t("en", "prj_project"), elem_id="prj_project"), label="prj_project")
            summary = gr.Markdown("", elem_id="prj_summary")
            voice = tr(gr.Dropdown([], label=t("en", "prj_voice"), elem_id="prj_voice", allow_custom_value=True), label="prj_voice")
            emotion = gr.Dropdown(emotion_choices(builtin_emotion_presets(), [], "en", t("en", "emo_choice_same")), value=SAME_AS_VOICE,
                                  label=t("en", "prj_emotion"), elem_id="prj_emotion")
            page.tr(emotion, label="prj_emotion")
            seed = tr(gr.Number(0, precision=0, minimum=0, label=t("en", "prj_seed"), elem_id="prj_seed"), label="prj_seed")
            with gr.Row():
                defaults_btn = tr(gr.Button(t("en", "prj_save_defaults"), elem_id="prj_save_defaults"), value="prj_save_defaults")
                delete_btn = tr(gr.Button(t("en", "prj_delete"), variant="stop", elem_id="prj_delete"), value="prj_delete")
        with gr.Column(scale=3):
            with gr.Row():
                render_btn = tr(gr.Button(t("en", "prj_render"), variant="primary", elem_id="prj_render"), value="prj_render")
                pause_btn = tr(gr.Button(t("en", "prj_pause"), elem_id="prj_pause"), value="prj_pause")
                cancel_btn = tr(gr.Button(t("en", "prj_cancel"), elem_id="prj_cancel"), value="prj_cancel")
            message = gr.Markdown("", elem_id="prj_message")
            progress = gr.HTML("", elem_id="prj_progress")
            chapters = gr.Dataframe(headers=t("en", "prj_chapters_headers").split("|"), interactive=False, wrap=True,
                                    elem_id="prj_chapters", max_height=300)
            with tr(gr.Accordion(t("en", "prj_edit"), open=False, elem_id="prj_edit"), label="prj_edit"):
                chapter = tr(gr.Dropdown([], label=t("en", "prj_chapter"), elem_id="prj_chapter"), label="prj_chapter")
                title = tr(gr.Textbox(label=t("en", "prj_title"), elem_id="prj_chapter_title"), label="prj_title")
                text = tr(gr.Textbox(lines=8, max_lines=30, label=t("en", "prj_text"), elem_id="prj_chapter_text"), label="prj_text")
                with gr.Row():
                    chapter_voice = tr(gr.Dropdown([PROJECT_DEFAULT], value=PROJECT_DEFAULT, label=t("en", "prj_chapter_voice"),
                                                   elem_id="prj_chapter_voice", allow_custom_value=True), label="prj_chapter_voice")
                    chapter_emotion = tr(gr.Dropdown([(t("en", "prj_from_project"), PROJECT_DEFAULT)], value=PROJECT_DEFAULT,
                                                     label=t("en", "prj_chapter_emotion"), elem_id="prj_chapter_emotion"),
                                         label="prj_chapter_emotion")
                save_chapter_btn = tr(gr.Button(t("en", "prj_save_chapter"), elem_id="prj_save_chapter"), value="prj_save_chapter")
            with gr.Row():
                fmt = tr(gr.Radio(OUTPUT_FORMATS, value="mp3", label=t("en", "prj_format"), elem_id="prj_format"), label="prj_format")
                export_btn = tr(gr.Button(t("en", "prj_export"), variant="primary", elem_id="prj_export"), value="prj_export")
            book = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "prj_book"), elem_id="prj_book"), label="prj_book")
            files = tr(gr.File(label=t("en", "prj_files"), file_count="multiple", interactive=False, elem_id="prj_files"),
                       label="prj_files")
    timer = gr.Timer(1.0, active=False)
    page.room("projects", name=name, upload=upload, pasted=pasted, create=create_btn, project=project, summary=summary, voice=voice,
              emotion=emotion, seed=seed, save_defaults=defaults_btn, delete=delete_btn, render=render_btn, pause=pause_btn,
              cancel=cancel_btn, message=message, progress=progress, chapters=chapters, chapter=chapter, title=title, text=text,
              chapter_voice=chapter_voice, chapter_emotion=chapter_emotion, save_chapter=save_chapter_btn, fmt=fmt,
              export=export_btn, book=book, files=files, timer=timer)


def wire(page: Page, demo: gr.Blocks):
    p, lang = page.projects, page.lang
    shown = [p.chapters, p.progress, p.chapter, p.voice, p.emotion, p.seed, p.summary, p.timer]
    private = dict(api_visibility="private", **LIGHT)

    def refresh_choices(synth: Synthesizer, selected, lang_value):
        voice_update, chapter_voice_update, projects_update = voices_and_projects(synth, selected)
        chapter_voice_update["choices"] = [(t(lang_value, "prj_from_project"), PROJECT_DEFAULT), *voice_update["choices"]]
        return (voice_update, chapter_voice_update, projects_update,
                gr.update(choices=emotion_dropdown_choices(synth, lang_value)),
                gr.update(choices=emotion_dropdown_choices(synth, lang_value, project_default=True)))

    page.tab_projects.select(page.bind(refresh_choices), [p.project, lang],
                             [p.voice, p.chapter_voice, p.project, p.emotion, p.chapter_emotion], **private)
    p.create.click(page.bind(create), [p.name, p.upload, p.pasted, p.voice, p.emotion, p.seed, lang], [p.project, p.message],
                   api_name="project_create", **LIGHT)
    p.project.change(page.bind(show_project), [p.project, lang], shown, **private)
    p.chapter.change(page.bind(pick_chapter), [p.project, p.chapter], [p.title, p.text, p.chapter_voice, p.chapter_emotion], **private)
    p.save_defaults.click(page.bind(save_defaults), [p.project, p.voice, p.emotion, p.seed, lang], [p.message], **private).then(
        page.bind(show_project), [p.project, lang], shown, **private)
    p.save_chapter.click(page.bind(save_chapter), [p.project, p.chapter, p.title, p.text, p.chapter_voice, p.chapter_emotion, lang],
                         [p.message], **private).then(page.bind(poll), [p.project, lang], [p.progress, p.chapters, p.timer], **private)
    p.render.click(page.bind(render), [p.project, lang], [p.progress, p.message, p.timer], api_name="project_render", **LIGHT)
    p.timer.tick(page.bind(tick), [p.project, lang], [p.progress, p.chapters, p.timer, p.message], **private)
    p.pause.click(page.bind(pause), [p.project, lang], [p.message], **private)
    p.cancel.click(page.bind(cancel), [p.project, lang], [p.message], **private)
    p.export.click(page.bind(export), [p.project, p.fmt, lang], [p.files, p.book, p.message], api_name="project_export", **LIGHT)
    p.delete.click(page.bind(delete), [p.project, lang], [p.project, p.message], **private)
