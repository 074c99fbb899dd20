"""The page's rooms without a browser: each handler called with a quick-voice synthesizer, as a
click would call it, and the one rule that keeps the generation settings in step everywhere."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import gradio as gr
import pytest
import soundfile as sf

from index_tts.service import (Busy, Conflict, EmotionSpec, GenerationParams, NotFound, NotReady, TimedOut, ValidationError,
                               normalize_webui_vector)
from index_tts.ui import dialogue, emotion, generation, glossary, history, library, model, presets, synthesize
from index_tts.ui.creator import emotion_from_choice
from index_tts.ui.errors import shows_errors
from index_tts.ui.page import bind
from tests.http_server import write_voice
from tests.test_service import quick_synth  # noqa: F401  (a fixture)

FIELDS = [f.name for f in dataclasses.fields(GenerationParams)]
# A value other than the default for every field (a new field fails here until it has one).
CHANGED = {"do_sample": False, "temperature": 1.3, "top_p": 0.55, "top_k": 7, "num_beams": 2, "repetition_penalty": 4.5,
           "length_penalty": -0.5, "max_mel_tokens": 800, "max_text_tokens_per_segment": 60, "interval_silence_ms": 350,
           "seed": 42, "quality": GenerationParams.QUALITIES[-1], "duration_factor": 1.25}


@pytest.fixture(scope="module")
def synth(quick_synth):  # noqa: F811
    return quick_synth


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> str:
    return str(write_voice(tmp_path_factory.mktemp("ui-rooms") / "voice.wav"))


@pytest.fixture(scope="module")
def page(synth):
    from index_tts.ui.app import build_ui

    return build_ui(lambda: synth)


def value(update):
    return update["value"] if isinstance(update, dict) else update


def choices(update) -> list:
    return [c[1] if isinstance(c, (list, tuple)) else c for c in update["choices"]]


# -- the generation settings: one table, everywhere -----------------------------------------------


def test_every_generation_field_is_in_the_ui_the_api_and_saved_presets(page, synth, wav):
    assert CHANGED.keys() == set(FIELDS), "give a new GenerationParams field a changed value in CHANGED"
    assert list(generation.FIELD_UI) == FIELDS, "give a new GenerationParams field a row in ui/generation.py FIELD_UI"

    # The UI: one widget per field, under its elem_id.
    ids = {block.elem_id for block in page.blocks.values()}
    assert {generation.FIELD_UI[n].elem_id or n for n in FIELDS} <= ids

    # The page's API endpoints take every field by name.
    endpoints = page.get_api_info()["named_endpoints"]
    for name in ("/synthesize", "/save_preset"):
        params = [p["parameter_name"] for p in endpoints[name]["parameters"]]
        assert [generation.param_name(n) for n in FIELDS] == [p for p in params if p in {generation.param_name(n) for n in FIELDS}]
    assert len(endpoints["/load_preset"]["returns"]) == 2 + 3 + 8 + 1 + len(FIELDS) + 2 + 1  # ..., model, language, message

    # The HTTP API's request schema has every field.
    from fastapi import FastAPI

    from index_tts.api import make_openai_router

    app = FastAPI()
    app.include_router(make_openai_router(lambda: synth))
    schema = app.openapi()
    body = schema["paths"]["/v1/audio/speech"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    resolve = (lambda node: schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node)
    props = resolve(body)["properties"]["generation"]
    props = resolve(next((n for n in props.get("anyOf", [props]) if "$ref" in n or "properties" in n), props))
    assert set(FIELDS) <= set(props["properties"])

    # Saved presets store and restore every field.
    form = {generation.param_name(n): v for n, v in CHANGED.items()}
    presets.save_preset(synth, name="Every field", voice=wav, **form)
    loaded = presets.load_preset(synth, "Every field")
    assert loaded[2 + 3 + 8 + 1: -3] == [CHANGED[n] for n in FIELDS]
    assert loaded[-3:-1] == ["indextts-2", "auto"]  # the model and its language
    assert synth.load_preset("Every field").params["generation"] == CHANGED


def test_generation_values_become_params_and_bad_ones_name_the_field():
    form = {generation.param_name(n): v for n, v in CHANGED.items()}
    assert generation.from_form({**form, "top_k": 7.0, "seed": 42.0}) == GenerationParams(**CHANGED)
    assert generation.from_form({**form, "seed": None}).seed is None
    assert generation.from_form({**form, "seed": -1}).seed is None  # the number box's "random"
    with pytest.raises(ValidationError, match="generation.top_k"):
        generation.from_form({**form, "top_k": float("nan")})
    with pytest.raises(ValidationError, match="generation.temperature"):
        generation.from_form({**form, "temperature": None})


def test_emotion_widgets_become_the_spec_the_synthesize_tab_means():
    sliders = {"happy": 0.9, "angry": 0.0, "sad": 0.0, "afraid": 0.0, "disgusted": 0.0, "melancholic": 0.0, "surprised": 0.6,
               "calm": 0.0}
    values = {"emo_mode": "vector", "emo_weight": 0.7, "emo_random": True, "emo_text": None, "emo_audio": None, **sliders}
    spec = emotion.from_form(values)
    assert spec.vector == normalize_webui_vector(list(sliders.values())) and sum(spec.vector) <= 0.8 + 1e-9
    assert (spec.mode, spec.weight, spec.use_random) == ("vector", 0.7, True)
    assert emotion.from_form({**values, "emo_mode": "text", "emo_text": "wry"}) == EmotionSpec(mode="text", weight=0.7, text="wry",
                                                                                                use_random=True)


def test_quality_choices_come_from_the_engine_contract():
    assert [v for _, v in generation.quality_choices("en")] == list(GenerationParams.QUALITIES)
    assert dict((v, label) for label, v in generation.quality_choices("zh"))["fast"] == "快速"


# -- the error decorator ----------------------------------------------------------------------------


@pytest.mark.parametrize("error,shown", [
    (ValidationError("generation.top_p", "must be in [0, 1]"), "generation.top_p: must be in [0, 1]"),
    (NotFound("voice", "Nobody", "voice"), "voice: voice 'Nobody' not found"),
    (Conflict("name", "a voice named 'A' already exists"), "name: a voice named 'A' already exists"),
    (Busy(3, "the queue is full; retry in 3 s"), "the queue is full; retry in 3 s"),
    (NotReady("loading", 0.5, "still loading (50%)"), "still loading (50%)"),
    (TimedOut("took longer than 30 s"), "took longer than 30 s"),
])
def test_service_errors_become_one_message(error, shown):
    @shows_errors
    def handler():
        raise error

    with pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.message == shown


def test_a_bug_is_reported_by_name_not_swallowed():
    @shows_errors
    def save_thing():
        raise KeyError("oops")

    with pytest.raises(gr.Error, match="save thing failed: KeyError"):
        save_thing()


def test_bind_hides_the_synthesizer_and_keeps_the_endpoint_names(synth):
    fn = bind(lambda: synth, history.delete_entry)
    assert list(inspect.signature(fn).parameters) == ["entry_id", "lang_value"]
    with_progress = inspect.signature(bind(lambda: synth, synthesize.synthesize, synthesize.FORM)).parameters
    assert list(with_progress)[:2] == ["voice", "text"] and isinstance(with_progress["progress"].default, gr.Progress)


# -- rooms -------------------------------------------------------------------------------------------


def test_library_save_rename_delete(synth, wav):
    saved = library.save_library_voice(synth, wav, "Room voice", "warm, low", "a note", "builtin:happy", False, "en")
    assert "Room voice" in choices(saved[0]) and value(saved[0]) == "Room voice" and "Saved voice" in saved[2]
    assert saved[-6:] == [None, "", "", "", False, "same"]  # the form empties
    with pytest.raises(gr.Error, match="already exists"):
        library.save_library_voice(synth, wav, "Room voice", "", "", "same", False, "en")

    audio, details = library.show_voice(synth, "Room voice", "en")
    assert Path(audio).is_file() and "warm, low" in details and "Happy" in details
    picked = library.pick_voice(synth, "Room voice", [])
    assert picked[1:4] == ["vector", 0.8, False] and max(picked[4:12]) > 0  # its default emotion fills the widgets
    mine = {"name": "Mine", "mode": "text", "weight": 0.4, "use_random": True, "sliders": [0.0] * 8, "text": "tired"}
    library.save_library_voice(synth, wav, "Tired voice", "", "", "user:Mine", False, "en")
    assert library.pick_voice(synth, "Tired voice", [mine])[1:] == ["text", 0.4, True, *[0.0] * 8, "tired"]
    assert emotion_from_choice("voice_default", [], [mine], "user:Mine") == EmotionSpec(mode="text", weight=0.4, text="tired",
                                                                                        use_random=True)  # a dialogue role's

    renamed = library.rename_voice(synth, "Room voice", "Room voice 2", "en")
    assert value(renamed[0]) == "Room voice 2" and "Room voice" not in choices(renamed[0])
    deleted = library.delete_voice(synth, "Room voice 2", "en")
    assert "Room voice 2" not in choices(deleted[0])
    with pytest.raises(gr.Error, match="not found"):
        library.delete_voice(synth, "Room voice 2", "en")
    with pytest.raises(gr.Error, match="not found"):
        library.rename_voice(synth, "Nobody at all", "Somebody", "en")


def test_library_export_and_import(synth, wav):
    library.save_library_voice(synth, wav, "Exported", "", "", "same", False, "en")
    path = Path(library.export_library(synth))
    assert path.is_file() and path.is_relative_to(synth.data_root)
    library.delete_voice(synth, "Exported", "en")
    imported = library.import_library(synth, str(path), False, "en")
    assert "Exported" in choices(imported[0]) and "Exported" in imported[2]


def test_the_target_duration_box_sets_the_length(synth, wav):
    for target in (2.0, 3.5):
        audio = synthesize.synthesize(synth, voice=wav, text="Say this line in exactly the time I give you.", seed=3,
                                      duration=target)[0]
        assert abs(sf.info(audio).duration - target) <= max(0.01 * target, 0.02)
    natural = sf.info(synthesize.synthesize(synth, voice=wav, text="Say this line in exactly the time I give you.", seed=3,
                                            duration=0)[0]).duration
    assert abs(natural - 2.0) > 0.05 and abs(natural - 3.5) > 0.05   # 0 (the empty box): the natural pace
    with pytest.raises(gr.Error, match="duration"):
        synthesize.synthesize(synth, voice=wav, text="Hi.", duration=60.0)


def test_synthesize_history_regenerate_delete(synth, wav):
    out = synthesize.synthesize(synth, voice=wav, text="History keeps this line.", seed=5, quality="fast")
    audio, info, rows, svg, srt, table, select = out
    assert sf.info(audio).duration > 0.3 and rows and "<svg" in svg and Path(srt).is_file()
    entry = value(select)
    assert entry and any("History keeps this line." in str(r) for r in table)
    assert synth.get_history(entry)["request"]["generation"]["quality"] == "fast"

    shown, files, _ = history.show_entry(synth, entry, "en")
    assert shown == files[0] and any(f.endswith(".srt") for f in files)

    again = synthesize.regenerate(synth, entry, "en")
    assert value(again[6]) != entry and sf.read(again[0])[0].shape == sf.read(audio)[0].shape  # same seed, same length

    table, select, message, played, listed = history.delete_entry(synth, entry, "en")
    assert entry not in choices(select) and played is None and listed == []
    with pytest.raises(gr.Error, match="not found"):
        history.delete_entry(synth, entry, "en")
    with pytest.raises(gr.Error, match="text"):
        synthesize.synthesize(synth, voice=wav, text="   ")


def test_presets_restore_every_field(synth, wav):
    sliders = {"happy": 0.0, "angry": 0.4, "sad": 0.0, "afraid": 0.0, "disgusted": 0.0, "melancholic": 0.2, "surprised": 0.0,
               "calm": 0.1}
    form = {generation.param_name(n): v for n, v in CHANGED.items()}
    choices_update, message = presets.save_preset(synth, name="Whole form", voice=wav, emo_mode="vector", emo_weight=0.7,
                                                  emo_random=True, emo_text="tense", **sliders, **form)
    assert value(choices_update) == "Whole form" and "Whole form" in message
    loaded = presets.load_preset(synth, "Whole form", "en")
    assert Path(loaded[0]).read_bytes() == Path(wav).read_bytes() and loaded[1] is None
    assert loaded[2:5] == ["vector", 0.7, True]  # mode, weight, use_random
    assert loaded[5:13] == list(sliders.values()) and loaded[13] == "tense"
    assert loaded[14:-3] == [CHANGED[n] for n in FIELDS]

    presets.delete_preset(synth, "Whole form", "en")
    with pytest.raises(gr.Error, match="not found"):
        presets.load_preset(synth, "Whole form", "en")
    with pytest.raises(gr.Error, match="not found"):
        presets.delete_preset(synth, "Whole form", "en")


def test_the_model_switch_old_presets_and_bad_choices(synth, wav):
    # The quick-voice studio serves IndexTTS2 only; its language choice stays hidden.
    assert [m.id for m in model.served(synth)] == ["indextts-2"]
    assert model.switch_model(synth, "indextts-2")["visible"] is False
    # A preset saved before the model choice reads as IndexTTS2's, in "auto".
    synth.save_preset("Old one", {"emotion": {}, "generation": {}}, voice=wav)
    assert presets.load_preset(synth, "Old one", "en")[-3:-1] == ["indextts-2", "auto"]
    # One naming a model this studio does not serve keeps the switch as it is and says so.
    synth.save_preset("Made by 2.5", {"emotion": {}, "generation": {}, "model": "indextts-2.5", "language": "ja"}, voice=wav)
    loaded = presets.load_preset(synth, "Made by 2.5", "en")
    assert loaded[-2] == "ja" and "indextts-2.5 is not served" in loaded[-1]
    with pytest.raises(gr.Error, match="model: indextts-2.5 is not served here"):
        synthesize.synthesize(synth, voice=wav, text="Hello.", model="indextts-2.5")
    with pytest.raises(gr.Error, match="language: must be one of"):
        synthesize.synthesize(synth, voice=wav, text="Hello.", language="klingon")


def test_user_emotion_presets_restore_use_random(synth):
    sliders = [0.0, 0.0, 0.5, 0.0, 0.0, 0.3, 0.0, 0.0]
    users, message, *dropdowns = emotion.save_user_preset(synth, "Gloomy", "vector", 0.6, True, *sliders, "", "en")
    assert "Gloomy" in message and len(dropdowns) == 1 + dialogue.MAX_UI_ROLES
    assert "user:Gloomy" in choices(dropdowns[0])
    gloomy = next(u for u in users if u["name"] == "Gloomy")
    assert emotion.restore(gloomy) == ["vector", 0.6, True, *sliders, ""]

    users, message, *_ = emotion.delete_user_preset(synth, "Gloomy", "en")
    assert all(u["name"] != "Gloomy" for u in users)
    with pytest.raises(gr.Error, match="not found"):
        emotion.delete_user_preset(synth, "Gloomy", "en")


def test_glossary_add_and_remove(synth):
    rows, message, *cleared = glossary.add_term(synth, "IndexTTS", "因得克斯", "index T T S", "en")
    assert ["IndexTTS", "因得克斯", "index T T S"] in rows and cleared == ["", "", ""]
    rows, message, cleared = glossary.remove_term(synth, "IndexTTS", "en")
    assert all(r[0] != "IndexTTS" for r in rows)
    with pytest.raises(gr.Error, match="not found"):
        glossary.remove_term(synth, "IndexTTS", "en")
    with pytest.raises(gr.Error, match="glossary"):
        glossary.add_term(synth, "", "x", None, "en")


def test_dialogue_roles_and_run(synth, wav):
    library.save_library_voice(synth, wav, "Dialogue voice", "", "", "builtin:calm", True, "en")
    script = "Ann: Good morning.\nBen: Morning to you too."
    updates = dialogue.detect_roles(script, "en", *[""] * (3 * dialogue.MAX_UI_ROLES))
    assert updates[1] == "Ann" and updates[5] == "Ben" and "Ann, Ben" in updates[-1]
    roles = ["Ann", "Dialogue voice", "voice_default", "Ben", "Dialogue voice", "builtin:angry"]
    roles += [""] * (3 * dialogue.MAX_UI_ROLES - len(roles))
    audio, info, svg, zip_path, srt, lines, table, select, entry = dialogue.voice_dialogue(synth, script, 200, "wav", "en", *roles)
    assert sf.info(audio).duration > 0.5 and Path(zip_path).is_file() and Path(srt).is_file()
    assert [line[1] for line in lines] == ["Ann", "Ben"] and synth.get_history(value(select))["kind"] == "dialogue"
    assert entry == value(select)
    seeds = [saved["seed"] for saved in synth.get_history(entry)["lines"]]
    assert [line[6] for line in lines] == seeds

    # Line 2 again with a new seed and the sad preset: a new entry; line 1 keeps its seed, line 2 gets the new one.
    *_, new_lines, _, new_select, new_entry = dialogue.regenerate_line(synth, entry, 2, 77, "builtin:sad", "en")
    assert new_entry != entry and value(new_select) == new_entry and [line[6] for line in new_lines] == [seeds[0], 77]
    assert synth.get_history(new_entry)["lines"][1]["emotion"]["vector"][2] > 0
    with pytest.raises(gr.Error, match="line"):
        dialogue.regenerate_line(synth, entry, 3, None, dialogue.KEEP, "en")
    with pytest.raises(gr.Error, match="Voice a dialogue first"):
        dialogue.regenerate_line(synth, "", 1, None, dialogue.KEEP, "en")

    missing = ["Ann", "", "voice_default", "Ben", "Dialogue voice", "voice_default"] + [""] * (3 * dialogue.MAX_UI_ROLES - 6)
    with pytest.raises(gr.Error, match="roles"):
        dialogue.voice_dialogue(synth, script, 200, "wav", "en", *missing)


@pytest.mark.parametrize("given,field", [
    ({"happy": "lots", "emo_mode": "vector"}, "emotion.vector.happy"),
    ({"emo_weight": "heavy", "emo_mode": "vector"}, "emotion.weight"),
    ({"emo_weight": float("nan"), "emo_mode": "vector"}, "emotion.weight"),
    ({"emo_mode": "shouting"}, "emotion.mode"),
    ({"top_k": float("inf")}, "generation.top_k"),
    ({"temperature": "hot"}, "generation.temperature"),
    ({"quality": "best"}, "generation.quality"),
    ({"text": "\x00"}, "text"),
])
def test_bad_widget_values_are_refused_by_name(synth, wav, given, field):
    with pytest.raises(gr.Error) as raised:
        synthesize.synthesize(synth, **{"voice": wav, "text": "A sentence.", **given})
    assert raised.value.message.startswith(field) and "failed" not in raised.value.message


def test_emotion_audition_streams_takes_and_use_this_sets_the_emotion(synth, wav):
    from index_tts.ui import audition

    n = len(audition.DEFAULT_CHOICES)
    updates = list(audition.run_audition(synth, wav, "Which one sounds right?", ["builtin:sad", "same"], "en",
                                         *[p.default for p in generation.form()]))
    assert len(updates) == 1 + 2 + 1 and n == 8
    first, *takes, last = updates
    assert [b["visible"] for b in first[2:2 + audition.MAX_TAKES]] == [False] * audition.MAX_TAKES
    shown = [[i for i, box in enumerate(u[2:2 + audition.MAX_TAKES]) if box.get("visible")] for u in takes]
    assert shown == [[0], [0, 1]]                     # one more take playable at each step
    players = last[2 + audition.MAX_TAKES:]
    assert sf.info(players[0]["value"]).duration > 0.3 and players[0]["label"] == "1. Sad · 哀"
    assert "All 2 takes ready" in last[0]
    restored = audition.use_take(last[1], 0)
    assert restored[0] == "vector" and restored[3 + 2] == 0.8     # mode, weight, random, then the sad slider
    assert audition.use_take(last[1], 1)[0] == "same_as_voice"
    with pytest.raises(gr.Error, match="emotions"):
        list(audition.run_audition(synth, wav, "None chosen.", [], "en", *[p.default for p in generation.form()]))

    # Cancel (this session's audition) after the first take: it stays, the rest are not made.
    streamed = audition.run_audition(synth, wav, "Stop soon.", audition.DEFAULT_CHOICES, "en", *[p.default for p in generation.form()])
    next(streamed), next(streamed)
    assert "Cancelling" in audition.cancel_audition("en")
    *_, last = list(streamed)
    assert "1 of 8" in last[0] and last[2]["visible"] and not last[3].get("visible")
    assert audition.cancel_audition("en") == gr.update()   # nothing running now


def test_bad_dialogue_pause_is_refused_by_name(synth):
    with pytest.raises(gr.Error) as raised:
        dialogue.voice_dialogue(synth, "Ann: Hi.", float("nan"), "wav", "en", *[""] * (3 * dialogue.MAX_UI_ROLES))
    assert raised.value.message.startswith("pause_ms")
