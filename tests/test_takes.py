"""One line at a time: regenerating a single dialogue line (the others kept sample for sample)
and the emotion audition (one line in several emotions, one queue place, take by take)."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
import soundfile as sf

from index_tts.engines import select_engine
from index_tts.service import (Busy, Cancelled, EmotionSpec, GenerationParams, Limits, NotFound, RoleSetting, SynthesisRequest,
                               Synthesizer, ValidationError, preset_spec, pure_presets)
from tests.test_service_load import voice

SCRIPT = "Ann: Good morning to you.\nBen: And a good morning to you too.\nAnn: [happy] Shall we go?"


@pytest.fixture()
def counted(tmp_path):
    """A quick-voice service whose engine counts its calls (texts in order), with voices Ann and Ben."""
    factory, reason = select_engine("quick", tmp_path / "no-model")
    synth = Synthesizer(factory, data_dir=tmp_path / "data", selection_reason=reason, limits=Limits(max_queue=0)).start()
    assert synth.wait_until_loaded(30) == "ready"
    engine = synth._ready_engine()
    calls: list[str] = []
    original = engine.synthesize

    @functools.wraps(original)
    def counting(request, *args, **kwargs):
        calls.append(request.text)
        return original(request, *args, **kwargs)

    engine.synthesize = counting
    for name, f0 in (("Ann voice", 120.0), ("Ben voice", 200.0)):
        synth.save_voice(name, voice(f0))
    path = tmp_path / "voice.wav"
    rate, samples = voice()
    sf.write(path, samples, rate)
    return synth, calls, path


ROLES = {"Ann": RoleSetting("Ann voice"), "Ben": RoleSetting("Ben voice", preset_spec("calm"))}


def line_audio(synth, result, n: int) -> np.ndarray:
    audio, _ = sf.read(result.path, dtype="int16")
    _, _, _, start, end = result.lines[n]
    return audio[round(start * 22050): round(end * 22050)]


# -- per-line regenerate --------------------------------------------------------------------------


def test_regenerating_one_line_renders_it_alone_and_keeps_the_others_sample_identical(counted):
    synth, calls, _ = counted
    first = synth.compose_dialogue(SCRIPT, ROLES, pause_ms=100)
    assert len(calls) == 3 and first.rendered_lines == 3
    record = synth.get_history(first.history_id)
    assert [line["seed"] for line in record["lines"]] == first.seeds and all(0 <= s < 2**32 for s in first.seeds)

    calls.clear()
    second = synth.regenerate_line(first.history_id, 2, seed=first.seeds[1] + 1)
    assert calls == ["And a good morning to you too."] and second.rendered_lines == 1
    assert second.history_id != first.history_id and synth.get_history(first.history_id)   # the old one stays
    assert second.seeds == [first.seeds[0], first.seeds[1] + 1, first.seeds[2]]
    for n in (0, 2):
        assert np.array_equal(line_audio(synth, first, n), line_audio(synth, second, n))
    # The kept lines' subtitles come back too: the tagged line still says it was happy.
    assert second.timeline[-1].emotion.startswith("happy") and second.timeline[-1].text.startswith("Ann: ")

    # A new emotion for line 2 (its seed kept): only it is voiced, it sounds different, the record says so.
    calls.clear()
    third = synth.regenerate_line(second.history_id, 2, seed=second.seeds[1], emotion=preset_spec("sad"))
    assert calls == ["And a good morning to you too."]
    assert synth.get_history(third.history_id)["lines"][1]["emotion"]["vector"][2] > 0
    assert not np.array_equal(line_audio(synth, second, 1), line_audio(synth, third, 1))
    for n in (0, 2):
        assert np.array_equal(line_audio(synth, first, n), line_audio(synth, third, n))

    # The same seed and emotion again: nothing to voice, the line's clip is kept.
    calls.clear()
    again = synth.regenerate_line(third.history_id, 1, seed=third.seeds[0])
    assert calls == [] and again.rendered_lines == 0
    assert np.array_equal(sf.read(again.path, dtype="int16")[0], sf.read(third.path, dtype="int16")[0])


def test_regenerate_line_refuses_bad_input_by_name(counted):
    synth, calls, path = counted
    result = synth.compose_dialogue(SCRIPT, ROLES)
    for kwargs, field in (({"line": 4}, "line"), ({"line": 0}, "line"), ({"line": True}, "line"),
                          ({"line": 1, "seed": -1}, "seed"), ({"line": 1, "seed": 2**32}, "seed"),
                          ({"line": 1, "emotion": EmotionSpec(mode="vector", vector=(2.0,) * 8)}, "emotion.vector.happy")):
        with pytest.raises(ValidationError) as raised:
            synth.regenerate_line(result.history_id, **kwargs)
        assert raised.value.field == field
    speech = synth.synthesize(SynthesisRequest(text="Just one voice.", voice=str(path)))
    with pytest.raises(ValidationError) as raised:
        synth.regenerate_line(speech.history_id, 1)
    assert raised.value.field == "history"
    with pytest.raises(NotFound):
        synth.regenerate_line("20200101T000000_000000Z_00000000", 1)


def test_clip_folders_of_deleted_dialogues_go_at_start(counted, tmp_path):
    synth, _, _ = counted
    kept = synth.compose_dialogue("Ann: Keep me.", ROLES)
    gone = synth.compose_dialogue("Ann: Delete me.", ROLES)
    folders = {synth.get_history(r.history_id)["dialogue_id"]: r for r in (kept, gone)}
    synth.delete_history(gone.history_id)
    restarted = Synthesizer(synth._factory, data_dir=tmp_path / "data")
    left = {p.name for p in (tmp_path / "data" / "dialogues").iterdir()}
    assert left == {k for k, r in folders.items() if r is kept}
    assert restarted.get_history(kept.history_id)


# -- emotion audition -----------------------------------------------------------------------------


def test_audition_hands_over_each_take_as_it_is_done_in_one_queue_place(counted, tmp_path):
    synth, calls, path = counted
    seen = []
    for take in synth.audition("What a day this has been.", path):
        # Each take arrives alone, playable, while the job still holds its one place.
        seen.append(take)
        assert len(calls) == len(seen) and take.path.is_file() and sf.info(take.path).duration > 0.3
        assert synth.queue_length() == 1
        with pytest.raises(Busy):   # max_queue=0: the place is taken
            synth.synthesize(SynthesisRequest(text="Me too.", voice=str(path)))
    assert synth.queue_length() == 0
    assert [t.label for t in seen] == ["happy", "angry", "sad", "afraid", "disgusted", "melancholic", "surprised", "calm"]
    assert [t.emotion for t in seen] == [spec for _, spec in pure_presets()]
    assert len({t.seed for t in seen}) == 1 and len({t.path for t in seen}) == 8
    audios = [sf.read(t.path, dtype="int16")[0] for t in seen]
    assert len({a.tobytes() for a in audios}) == 8   # eight emotions, eight different takes


def test_audition_of_a_chosen_set_is_reproducible_with_its_seed(counted):
    synth, calls, path = counted
    chosen = [("Gloomy", EmotionSpec.from_record({"mode": "vector", "weight": 0.55, "sliders": [0, 0, 0.8, 0, 0, 0, 0, 0]})),
              ("excited", preset_spec("excited"))]
    takes = list(synth.audition("Once more.", path, chosen, generation=GenerationParams(seed=5)))
    assert [t.label for t in takes] == ["Gloomy", "excited"] and {t.seed for t in takes} == {5}
    again = list(synth.audition("Once more.", path, chosen[1:], generation=GenerationParams(seed=5)))
    assert np.array_equal(sf.read(again[0].path, dtype="int16")[0], sf.read(takes[1].path, dtype="int16")[0])


def test_cancelling_an_audition_keeps_the_finished_takes(counted):
    synth, calls, path = counted
    cancel = threading.Event()
    takes = []
    with pytest.raises(Cancelled):
        for take in synth.audition("Stop after two.", path, cancel=cancel):
            takes.append(take)
            if len(takes) == 2:
                cancel.set()
    assert len(takes) == 2 and all(t.path.is_file() for t in takes) and len(calls) == 2
    assert sorted(p.name for p in takes[0].path.parent.iterdir()) == ["01_happy.wav", "02_angry.wav"]
    assert synth.queue_length() == 0


def test_audition_refuses_bad_input_before_it_starts(counted):
    synth, calls, path = counted
    for args, field in ((("", path), "text"), (("Hi.", path / "missing.wav"), "voice"), (("Hi.", path, []), "emotions"),
                        (("Hi.", path, [("x", "happy")]), "emotions.0"),
                        (("Hi.", path, [("x", EmotionSpec(mode="vector", vector=(0.0,) * 7))]), "emotion.vector")):
        with pytest.raises(ValidationError) as raised:
            synth.audition(*args)
        assert raised.value.field == field
    assert calls == [] and synth.queue_length() == 0


# -- the same on the tiny IndexTTS2 model (random weights: only form and sameness are checked) -------


@pytest.mark.slow
def test_tiny_indextts2_regenerates_one_line_and_auditions_in_one_place(tiny_model_dir, tmp_path):
    factory, reason = select_engine("indextts2", tiny_model_dir)
    synth = Synthesizer(factory, data_dir=tmp_path / "data", selection_reason=reason).start()
    assert synth.wait_until_loaded(900) == "ready", synth.status().error
    calls: list[str] = []
    engine = synth._ready_engine()
    original = engine.synthesize

    @functools.wraps(original)
    def counting(request, *args, **kwargs):
        calls.append(request.text)
        return original(request, *args, **kwargs)

    engine.synthesize = counting
    for name, f0 in (("Ann voice", 120.0), ("Ben voice", 200.0)):
        synth.save_voice(name, voice(f0))
    # A fixed seed: random weights might emit the stop code at once and say nothing.
    first = synth.compose_dialogue("Ann: This is simply not acceptable!\nBen: This is simply not acceptable!", ROLES,
                                   generation=GenerationParams(seed=1234))
    assert first.seeds == [1234, 1234] and len(calls) == 2
    calls.clear()
    second = synth.regenerate_line(first.history_id, 2, seed=1234, emotion=preset_spec("angry"))
    assert len(calls) == 1 and second.rendered_lines == 1
    assert np.array_equal(line_audio(synth, first, 0), line_audio(synth, second, 0))

    calls.clear()
    path = tmp_path / "voice.wav"
    sf.write(path, *reversed(voice()))
    takes = []
    for take in synth.audition("This is simply not acceptable!", path, [("sad", preset_spec("sad")), ("calm", preset_spec("calm"))],
                               generation=GenerationParams(seed=1234)):
        assert synth.queue_length() == 1
        takes.append(take)
    assert [t.label for t in takes] == ["sad", "calm"] and len(calls) == 2 and all(t.path.is_file() for t in takes)
