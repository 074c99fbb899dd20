"""The service as the only door: every library, history, preset and glossary operation raises
the typed errors; dialogue runs as an admitted job; bad input of every class is refused by name."""

from __future__ import annotations

import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from index_tts.service import (Busy, Cancelled, Conflict, EmotionSpec, GenerationParams, NotFound, RoleSetting,
                               SynthesisRequest, TimedOut, ValidationError)
from tests.test_service import quick_synth  # noqa: F401  (a fixture)
from tests.test_service_load import held_synth, voice

BAD_NAMES = ["", "   ", "a\x00b", "bad\x1bname", "zero\u200bwidth", "lone\ud800", "x" * 201]


def saved(synth, name="Ann"):
    return synth.save_voice(name, voice())[0]


# -- the library -------------------------------------------------------------------------------

def test_voice_operations_raise_typed_errors(tmp_path):
    synth, engine = held_synth(tmp_path)
    engine.release.set()
    saved(synth, "Ann")
    saved(synth, "Bob")
    assert [v.name for v in synth.list_voices()[0]] == ["Ann", "Bob"]
    assert synth.get_voice("Ann").audio_path.is_file()
    with pytest.raises(Conflict) as taken:
        synth.save_voice("Ann", voice())
    assert taken.value.field == "name" and "Ann" in str(taken.value)
    with pytest.raises(Conflict) as clash:
        synth.rename_voice("Ann", "Bob")
    assert clash.value.field == "new_name"
    assert synth.rename_voice("Ann", "Cleo").name == "Cleo"
    with pytest.raises(NotFound) as missing:
        synth.rename_voice("Ann", "Dora")
    assert (missing.value.kind, missing.value.field) == ("voice", "name")
    synth.delete_voice("Cleo")
    with pytest.raises(NotFound):
        synth.delete_voice("Cleo")      # deleting what is not there says so (the UI once said "deleted")
    with pytest.raises(NotFound):
        synth.get_voice("Cleo")
    assert [v.name for v in synth.list_voices()[0]] == ["Bob"]

    exported = synth.export_voices_to_file()
    assert exported.parent == synth.data_root / "exports"
    assert sorted(zipfile.ZipFile(exported).namelist()) == ["Bob/voice.json", "Bob/voice.wav"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_by_field_and_change_nothing(tmp_path, name):
    synth, engine = held_synth(tmp_path)
    engine.release.set()
    saved(synth, "Ann")
    calls = [
        ("name", lambda: synth.save_voice(name, voice())),
        ("name", lambda: synth.get_voice(name)),
        ("name", lambda: synth.delete_voice(name)),
        ("new_name", lambda: synth.rename_voice("Ann", name)),
        ("voice", lambda: synth.voice_path(name)),
        ("name", lambda: synth.save_preset(name, {})),
        ("name", lambda: synth.load_preset(name)),
        ("name", lambda: synth.delete_preset(name)),
        ("emotion_preset.name", lambda: synth.save_emotion_preset(name, "same_as_voice", 0.5, [0.0] * 8)),
        ("name", lambda: synth.delete_emotion_preset(name)),
        ("glossary.term", lambda: synth.remove_glossary_term(name)),
        ("history", lambda: synth.get_history(name)),
        ("history", lambda: synth.delete_history(name)),
    ]
    for field, call in calls:
        with pytest.raises(ValidationError) as refused:
            call()
        assert refused.value.field == field, (field, str(refused.value))
    assert [v.name for v in synth.list_voices()[0]] == ["Ann"]
    assert synth.list_presets()[0] == [] and synth.list_emotion_presets() == []


def test_history_presets_emotion_presets_and_glossary(tmp_path):
    synth, engine = held_synth(tmp_path)
    engine.release.set()
    result = synth.synthesize(SynthesisRequest(text="hello", voice=voice()))
    (entry,) = synth.list_history()
    assert entry["id"] == result.history_id == synth.get_history(result.history_id)["id"]
    files = synth.history_files(result.history_id)
    assert files[0] == result.path and files[1].suffix == ".srt"
    synth.delete_history(result.history_id)
    with pytest.raises(NotFound) as gone:
        synth.delete_history(result.history_id)
    assert gone.value.field == "history"
    with pytest.raises(NotFound):
        synth.regenerate(result.history_id)

    with pytest.raises(ValidationError) as no_file:
        synth.save_preset("Warm", {}, voice=tmp_path / "gone.wav")
    assert no_file.value.field == "voice" and synth.list_presets()[0] == []
    preset, replaced = synth.save_preset("Warm", {"generation": {"top_k": 10}})
    assert not replaced and synth.load_preset("Warm").params == {"generation": {"top_k": 10}}
    assert synth.list_presets()[0] == ["Warm"]
    synth.delete_preset("Warm")
    with pytest.raises(NotFound):
        synth.load_preset("Warm")
    with pytest.raises(NotFound):
        synth.delete_preset("Warm")

    stored, replaced = synth.save_emotion_preset("Jumpy", "vector", 0.7, [0.5] + [0.0] * 7, use_random=True)
    assert not replaced and stored["use_random"] is True
    assert synth.list_emotion_presets()[0]["use_random"] is True     # a click can restore it
    with pytest.raises(ValidationError) as bad_weight:
        synth.save_emotion_preset("Odd", "vector", 7, [0.0] * 8)
    assert bad_weight.value.field == "emotion_preset.weight"
    synth.delete_emotion_preset("jumpy")
    with pytest.raises(NotFound):
        synth.delete_emotion_preset("jumpy")

    assert synth.add_glossary_term("GPU", zh="图形处理器") is False
    assert synth.add_glossary_term("gpu", en="graphics chip") is True
    assert synth.list_glossary() == [("gpu", "", "graphics chip")]
    with pytest.raises(ValidationError) as bad_term:
        synth.add_glossary_term("a\x00b", en="x")
    assert bad_term.value.field == "glossary.term"
    synth.remove_glossary_term("GPU")
    with pytest.raises(NotFound) as no_term:
        synth.remove_glossary_term("GPU")
    assert no_term.value.field == "glossary.term"


# -- dialogue through admission ------------------------------------------------------------------

def test_a_running_dialogue_counts_in_the_queue_and_can_be_cancelled(tmp_path):
    synth, engine = held_synth(tmp_path, max_queue=1)
    saved(synth, "Ann")
    cancel = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        job = pool.submit(synth.compose_dialogue, "A: One.\nB: Two.", {"A": RoleSetting("Ann"), "B": RoleSetting("Ann")},
                          cancel=cancel)
        assert engine.started.acquire(timeout=10)
        assert synth.queue_length() == 1                        # what /readyz reports as its queue
        waiting = pool.submit(synth.synthesize, SynthesisRequest(text="next", voice=voice()))
        for _ in range(500):
            if synth.queue_length() == 2:
                break
            threading.Event().wait(0.01)
        with pytest.raises(Busy):                               # the dialogue holds a place like any request
            synth.synthesize(SynthesisRequest(text="one too many", voice=voice()))
        cancel.set()
        with pytest.raises(Cancelled):
            job.result(timeout=10)
        engine.release.set()
        assert waiting.result(timeout=10).path.is_file()
    assert synth.queue_length() == 0
    assert [r["kind"] for r in synth.list_history()] == ["speech"]   # the cancelled dialogue wrote nothing
    assert not list(synth.data.history.glob("*.lines.zip"))


def test_a_dialogue_past_the_request_timeout_gives_up(tmp_path):
    synth, engine = held_synth(tmp_path, request_timeout_s=0.3)
    saved(synth, "Ann")
    with pytest.raises(TimedOut):
        synth.compose_dialogue("A: Hello.", {"A": RoleSetting("Ann")})
    engine.release.set()
    assert synth.list_history() == [] and synth.queue_length() == 0


def test_a_dialogue_keeps_one_emotion_record_and_regenerates(tmp_path):
    synth, engine = held_synth(tmp_path)
    engine.release.set()
    saved(synth, "Ann")
    angry = EmotionSpec(mode="vector", vector=(0, 0.7, 0, 0, 0, 0, 0, 0), weight=0.8, use_random=True)
    first = synth.compose_dialogue("A: One.\nB: Two.", {"A": RoleSetting("Ann", angry), "B": RoleSetting("Ann")})
    assert [s.text for s in first.timeline] == ["A: One.", "B: Two."]
    roles = synth.get_history(first.history_id)["request"]["roles"]
    assert roles["A"]["emotion"] == angry.to_record()
    again = synth.regenerate(first.history_id)
    assert again.lines == first.lines and again.history_id != first.history_id


# -- bad input of every class, at the service boundary --------------------------------------------

@pytest.mark.parametrize("text,field", [
    ("\x00Hello there", "text"),             # a NUL before the first speakable character (was a 500)
    ("Hello\x00there", "text"),
    ("Hi \x1b[31m red", "text"),
    ("Hi\u202ethere", "text"),               # a direction override (format character)
    ("Hi \ud800 there", "text"),             # a lone surrogate (what invalid UTF-8 decodes to with surrogateescape)
    (12, "text"),
    (["Hi"], "text"),
])
def test_bad_text_is_refused_by_name(quick_synth, text, field):
    with pytest.raises(ValidationError) as refused:
        quick_synth.synthesize(SynthesisRequest(text=text, voice=voice()))
    assert refused.value.field == field


@pytest.mark.parametrize("change,field", [
    ({"speed": 10**400}, "speed"),
    ({"speed": float("nan")}, "speed"),
    ({"emotion": EmotionSpec(weight=10**400)}, "emotion.weight"),
    ({"emotion": EmotionSpec(mode="vector", vector=(10**400,) + (0,) * 7)}, "emotion.vector.happy"),
    ({"emotion": EmotionSpec(mode="text", text="calm\x00")}, "emotion.text"),
    ({"emotion": EmotionSpec(mode="text", text="x" * 1001)}, "emotion.text"),
    ({"generation": GenerationParams(top_k=10**400)}, "generation.top_k"),
    ({"generation": GenerationParams(temperature=10**400)}, "generation"),
    ({"generation": GenerationParams(seed=2**70)}, "generation.seed"),
    ({"output_format": "wav\x00"}, "output_format"),
])
def test_huge_and_non_finite_numbers_are_refused_by_name(tmp_path, change, field):
    synth, engine = held_synth(tmp_path)
    engine.release.set()
    with pytest.raises(ValidationError) as refused:
        synth.synthesize(SynthesisRequest(**{"text": "hello", "voice": voice(), **change}))
    assert refused.value.field == field or refused.value.field.startswith(field + ".")
    assert synth.list_history() == []


def test_preview_refuses_control_characters(quick_synth):
    with pytest.raises(ValidationError) as refused:
        quick_synth.preview_segments("\x00Hello", 120)
    assert refused.value.field == "text"
    with pytest.raises(ValidationError):
        quick_synth.preview_segments("Hello", 10**400)


def test_the_nul_text_that_gave_a_500_is_a_named_error_on_the_quick_voice(quick_synth):
    """The known 500: text whose first speakable character follows a NUL."""
    for text in ("\x00a", "\x00\x00Hello.", " \x00你好"):
        with pytest.raises(ValidationError, match="control character"):
            quick_synth.synthesize(SynthesisRequest(text=text, voice=voice()))


def test_an_unusable_reference_is_a_named_error_not_a_500(quick_synth, tmp_path):
    """A reference with no voiced speech (a pure tone, as the API fuzzing found) names its field."""
    import soundfile as sf

    t = np.arange(8000) / 8000
    tone = tmp_path / "tone.wav"
    sf.write(tone, 0.3 * np.sin(2 * np.pi * 440 * t), 8000)
    with pytest.raises(ValidationError) as caught:
        quick_synth.synthesize(SynthesisRequest(text="Hello.", voice=str(tone)))
    assert caught.value.field == "voice" and "voiced" in str(caught.value)
    assert quick_synth.queue_length() == 0
