"""The Voice library tab: saved voices listed, played, used, saved, renamed, deleted, exported
and imported."""

from __future__ import annotations

import gradio as gr

from index_tts.service import Conflict, Synthesizer, builtin_emotion_presets
from index_tts.ui import emotion
from index_tts.ui.creator import SAME_AS_VOICE, choice_label, emotion_choices, preset_record
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import LIGHT, MAX_UI_ROLES, Page, plain
from index_tts.ui.strings import t


# Other tabs' voice pickers that follow the library: the dialogue's roles, the dubbing's voice and roles.
VOICE_PICKERS = MAX_UI_ROLES + 1 + MAX_UI_ROLES


def library_view(synth: Synthesizer, selected=None, message=""):
    """[library list, Synthesize's voice list, message, each VOICE_PICKERS' choices]."""
    names = [v.name for v in synth.list_voices()[0]]
    value = selected if selected in names else None
    return [gr.update(choices=names, value=value), gr.update(choices=names, value=value), message,
            *[gr.update(choices=names) for _ in range(VOICE_PICKERS)]]


@shows_errors
def show_voice(synth: Synthesizer, name, lang_value):
    if not name:
        return None, ""
    v = synth.get_voice(name)
    return str(v.audio_path), t(lang_value, "lib_details", name=v.name, tags=", ".join(v.tags) or "-",
                                note=v.note, emotion=choice_label(v.default_emotion, builtin_emotion_presets(), lang_value))


@shows_errors
def pick_voice(synth: Synthesizer, name, users):
    """A voice picked for Synthesize: [its audio, and its default emotion in the widgets: mode,
    weight, use_random, 8 sliders, text] (the emotion widgets unchanged when it has none)."""
    if not name:
        return [gr.update()] * 13
    v = synth.get_voice(name)
    record = preset_record(v.default_emotion, builtin_emotion_presets(), users or []) if isinstance(v.default_emotion, str) else None
    return [str(v.audio_path), *(emotion.restore(record) if record is not None else [gr.update()] * 12)]


@shows_errors
def use_voice(synth: Synthesizer, name, users, lang_value):
    if not name:
        raise gr.Error(t(lang_value, "lib_none"), print_exception=False)
    return [*pick_voice(synth, name, users), gr.update(value=name), t(lang_value, "lib_used", name=name), gr.Tabs(selected="tab_synth")]


@shows_errors
def save_library_voice(synth: Synthesizer, audio, name, tags_value, note, emotion_choice, overwrite, lang_value):
    """Save a voice; the form empties so the next voice starts clean."""
    try:
        saved, replaced = synth.save_voice(name or "", audio, tags=tags_value, note=note, overwrite=bool(overwrite),
                                           default_emotion=None if emotion_choice in (None, SAME_AS_VOICE) else emotion_choice)
    except Conflict:  # with the hint to tick "replace"
        raise gr.Error(plain(t(lang_value, "lib_exists", name=(name or "").strip())), print_exception=False) from None
    message = t(lang_value, "lib_replaced" if replaced else "lib_saved", name=saved.name)
    return [*library_view(synth, saved.name, message), None, "", "", "", False, SAME_AS_VOICE]


@shows_errors
def rename_voice(synth: Synthesizer, name, new_name, lang_value):
    if not name:
        raise gr.Error(t(lang_value, "lib_none"), print_exception=False)
    try:
        renamed = synth.rename_voice(name, new_name or "")
    except Conflict:
        raise gr.Error(plain(t(lang_value, "lib_exists", name=(new_name or "").strip())), print_exception=False) from None
    return library_view(synth, renamed.name, t(lang_value, "lib_renamed", name=renamed.name))


@shows_errors
def delete_voice(synth: Synthesizer, name, lang_value):
    if not name:
        raise gr.Error(t(lang_value, "lib_none"), print_exception=False)
    synth.delete_voice(name)
    return library_view(synth, None, t(lang_value, "lib_deleted", name=name))


@shows_errors
def export_library(synth: Synthesizer):
    return str(synth.export_voices_to_file())


@shows_errors
def import_library(synth: Synthesizer, zip_path, overwrite, lang_value):
    if not zip_path:
        raise gr.Error("voices_zip: choose a library zip first", print_exception=False)
    imported, skipped = synth.import_voices(zip_path, overwrite=bool(overwrite))
    return library_view(synth, None, t(lang_value, "lib_imported", imported=", ".join(imported) or "-", skipped=", ".join(skipped) or "-"))


def layout(page: Page):
    tr = page.tr
    with gr.Row():
        with gr.Column(scale=1):
            voices = tr(gr.Radio([], label=t("en", "lib_voices"), elem_id="lib_voices"), label="lib_voices")
        with gr.Column(scale=2):
            # Autoplay: one click on a name in the list plays that voice.
            audio = tr(gr.Audio(type="filepath", interactive=False, label=t("en", "lib_audio"), elem_id="lib_audio", buttons=["download"],
                                autoplay=True), label="lib_audio")
            details = gr.Markdown("", elem_id="lib_details")
            use = tr(gr.Button(t("en", "lib_use"), variant="primary", elem_id="lib_use_btn"), value="lib_use")
    info = gr.Markdown("", elem_id="lib_info")
    with tr(gr.Accordion(t("en", "lib_new_section"), open=True, elem_id="lib_new_section"), label="lib_new_section"):
        with gr.Row():
            new_audio = tr(gr.Audio(sources=["upload", "microphone"], type="filepath", label=t("en", "lib_new_audio"), elem_id="lib_new_audio"),
                           label="lib_new_audio")
            with gr.Column():
                name = tr(gr.Textbox(label=t("en", "lib_name"), elem_id="lib_name", max_lines=1), label="lib_name")
                tags = tr(gr.Textbox(label=t("en", "lib_tags"), elem_id="lib_tags", max_lines=1), label="lib_tags")
                note = tr(gr.Textbox(label=t("en", "lib_note"), elem_id="lib_note", lines=2), label="lib_note")
                default_emotion = tr(gr.Dropdown(emotion_choices(builtin_emotion_presets(), [], "en", t("en", "emo_choice_same")), value=SAME_AS_VOICE,
                                                 label=t("en", "lib_emotion"), elem_id="lib_emotion"), label="lib_emotion")
                overwrite = tr(gr.Checkbox(False, label=t("en", "lib_overwrite"), elem_id="lib_overwrite"), label="lib_overwrite")
                save = tr(gr.Button(t("en", "lib_save"), variant="primary", elem_id="lib_save_btn"), value="lib_save")
    with tr(gr.Accordion(t("en", "lib_manage_section"), open=False, elem_id="lib_manage_section"), label="lib_manage_section"):
        with gr.Row():
            rename_to = tr(gr.Textbox(label=t("en", "lib_rename_to"), elem_id="lib_rename_to", max_lines=1, scale=2), label="lib_rename_to")
            rename = tr(gr.Button(t("en", "lib_rename"), elem_id="lib_rename_btn", scale=0), value="lib_rename")
            delete = tr(gr.Button(t("en", "lib_delete"), variant="stop", elem_id="lib_delete_btn", scale=0), value="lib_delete")
        with gr.Row():
            export = tr(gr.Button(t("en", "lib_export"), elem_id="lib_export_btn", scale=0), value="lib_export")
            export_file = tr(gr.File(label=t("en", "lib_export_file"), interactive=False, elem_id="lib_export_file"), label="lib_export_file")
        with gr.Row():
            import_file = tr(gr.File(label=t("en", "lib_import_file"), file_types=[".zip"], type="filepath", elem_id="lib_import_file"),
                             label="lib_import_file")
            with gr.Column():
                import_overwrite = tr(gr.Checkbox(False, label=t("en", "lib_import_overwrite"), elem_id="lib_import_overwrite"),
                                      label="lib_import_overwrite")
                import_ = tr(gr.Button(t("en", "lib_import"), elem_id="lib_import_btn"), value="lib_import")
    page.room("library", voices=voices, audio=audio, details=details, use=use, info=info, new_audio=new_audio, name=name, tags=tags,
              note=note, emotion=default_emotion, overwrite=overwrite, save=save, rename_to=rename_to, rename=rename, delete=delete,
              export=export, export_file=export_file, import_file=import_file, import_overwrite=import_overwrite, import_=import_)


def wire(page: Page, demo: gr.Blocks):
    lib, s, e = page.library, page.synth, page.emotion
    outputs = [lib.voices, s.voice_pick, lib.info, *page.dialogue.role_voices, *page.dubbing.role_voices]
    picked = [s.voice, *e.restorable]
    lib.voices.change(page.bind(show_voice), [lib.voices, page.lang], [lib.audio, lib.details], api_visibility="private", **LIGHT)
    s.voice_pick.input(page.bind(pick_voice), [s.voice_pick, e.users], picked, api_visibility="private", **LIGHT)
    lib.use.click(page.bind(use_voice), [lib.voices, e.users, page.lang], [*picked, s.voice_pick, lib.info, page.tabs],
                  api_visibility="private", **LIGHT)
    lib.save.click(page.bind(save_library_voice), [lib.new_audio, lib.name, lib.tags, lib.note, lib.emotion, lib.overwrite, page.lang],
                   outputs + [lib.new_audio, lib.name, lib.tags, lib.note, lib.overwrite, lib.emotion], api_name="save_voice", **LIGHT)
    lib.rename.click(page.bind(rename_voice), [lib.voices, lib.rename_to, page.lang], outputs, api_name="rename_voice", **LIGHT)
    lib.delete.click(page.bind(delete_voice), [lib.voices, page.lang], outputs, api_name="delete_voice", **LIGHT)
    lib.export.click(page.bind(export_library), None, lib.export_file, api_name="export_voices", **LIGHT)
    lib.import_.click(page.bind(import_library), [lib.import_file, lib.import_overwrite, page.lang], outputs, api_name="import_voices",
                      **LIGHT)
    demo.load(page.bind(library_view), None, outputs, api_visibility="private", **LIGHT)
