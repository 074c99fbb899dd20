"""Clips: keyed by everything that shapes their sound, rendered once, kept atomically."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import soundfile as sf

from index_tts.service import Cancelled, EmotionSpec, GenerationParams, preset_spec
from index_tts.service.clips import ClipStore, LocalRunner, make_clip, render_missing
from tests.test_service import quick_synth  # noqa: F401  (a fixture)
from tests.test_service_load import voice


@pytest.fixture(scope="module")
def voice_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips-voice") / "ann.wav"
    rate, samples = voice()
    sf.write(path, samples, rate)
    return path


def test_the_key_follows_the_sound_not_the_path(quick_synth, voice_file, tmp_path):
    clip = make_clip(quick_synth, "Hello there.", voice_file, seed=1)
    moved = tmp_path / "elsewhere.wav"
    moved.write_bytes(voice_file.read_bytes())
    assert make_clip(quick_synth, "Hello there.", moved, seed=1).key == clip.key
    changed = [make_clip(quick_synth, "Hello there!", voice_file, seed=1),
               make_clip(quick_synth, "Hello there.", voice_file, seed=2),
               make_clip(quick_synth, "Hello there.", voice_file, seed=1, emotion=preset_spec("happy")),
               make_clip(quick_synth, "Hello there.", voice_file, seed=1, generation=GenerationParams(temperature=0.5))]
    assert len({clip.key} | {c.key for c in changed}) == 5
    assert clip.engine.startswith(quick_synth.status().engine)


def test_stored_clips_are_never_rendered_again(quick_synth, voice_file, tmp_path):
    store = ClipStore(tmp_path / "clips")
    clips = [make_clip(quick_synth, text, voice_file, seed=7) for text in ("One line.", "Two lines.", "One line.")]
    rendered: list[str] = []
    with quick_synth.job(timeout_s=math.inf) as check:
        assert render_missing(clips, store, LocalRunner(quick_synth), check, lambda c, a: rendered.append(c.key)) == 2
    assert rendered == [clips[0].key, clips[1].key]
    first = store.get(clips[0].key)
    assert first.dtype == np.int16 and first.size > 1000

    edited = [clips[0], make_clip(quick_synth, "Two lines, edited.", voice_file, seed=7)]
    assert render_missing(edited, store, LocalRunner(quick_synth)) == 1   # only the edited one
    assert np.array_equal(store.get(clips[0].key), first)
    assert store.keep_only(c.key for c in edited) == 1
    assert clips[1].key not in store and edited[1].key in store


def test_the_same_clip_sounds_the_same_again(quick_synth, voice_file, tmp_path):
    clip = make_clip(quick_synth, "Same seed, same audio.", voice_file, seed=11, emotion=EmotionSpec())
    a, b = ClipStore(tmp_path / "a"), ClipStore(tmp_path / "b")
    render_missing([clip], a, LocalRunner(quick_synth))
    render_missing([clip], b, LocalRunner(quick_synth))
    assert len(a.get(clip.key)) == len(b.get(clip.key))


def test_a_cancelled_render_keeps_what_finished_and_nothing_half_written(quick_synth, voice_file, tmp_path):
    store = ClipStore(tmp_path / "clips")
    clips = [make_clip(quick_synth, f"Line number {n}.", voice_file, seed=n) for n in range(3)]
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        with quick_synth.job(cancel, timeout_s=math.inf) as check:
            render_missing(clips, store, LocalRunner(quick_synth), check, lambda c, a: cancel.set())
    assert [c.key in store for c in clips] == [True, False, False]
    assert not [p for p in store.folder.iterdir() if p.suffix != ".wav"]


def test_bad_keys_cannot_leave_the_folder(tmp_path):
    store = ClipStore(tmp_path)
    with pytest.raises(ValueError):
        store.put("../escape", np.zeros(10, np.int16))
