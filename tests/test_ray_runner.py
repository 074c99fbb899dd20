"""RayRunner (index_tts/scale): clips rendered by Ray actors are the clips this process renders.

Each test module starts its own small local Ray instance (2 CPUs, no dashboard, a 200 MB object
store) and shuts it down after. With the tiny IndexTTS2 model the audio is sample-identical; the
quick voice differs across processes by espeak's phase state only (docs/scale-out.md gives the
bound this test holds it to).
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import replace

import numpy as np
import pytest
import ray
import soundfile as sf

from index_tts.service import Cancelled, GenerationParams, Synthesizer, ValidationError, choose_engine
from index_tts.scale.ray_runner import RayRunner
from index_tts.service.clips import ClipStore, LocalRunner, make_clip, render_missing
from tests.test_indextts2_engine import SR, buzz

TEXTS = ["The first line of the book.", "A second line, somewhat longer than the first one.", "Short.",
         "Then a fourth, with a question?", "And a fifth line.", "The sixth and last one."]
# Random weights seldom emit the stop code: cap the codes so each clip stays short.
FAST = GenerationParams(max_mel_tokens=50)
# The quick voice across processes: espeak's wave generator keeps phase state from one utterance
# to the next (index_tts/quickvoice/espeak.py), and even the number of samples it makes for a
# sentence depends on what the process spoke before. So a clip rendered on an actor is the same
# speech, not the same samples: its length and level are held to these bounds (docs/scale-out.md).
QUICK_MAX_LENGTH_DIFF = 0.01      # of the clip's length
QUICK_MAX_LEVEL_DIFF_DB = 0.5


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def voice_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray-voice") / "narrator.wav"
    sf.write(path, buzz(140), SR)
    return path


def service(engine_kwargs: dict, data_dir) -> Synthesizer:
    factory, reason, _ = choose_engine(**engine_kwargs)
    synth = Synthesizer(factory, data_dir=data_dir, selection_reason=reason).start()
    assert synth.wait_until_loaded(600) == "ready", synth.status().error
    return synth


def rendered(clips, runner) -> dict[str, np.ndarray]:
    out = {}
    runner.run(clips, lambda clip, audio: out.__setitem__(clip.key, audio), lambda: None)
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tmp_path_factory, voice_file):
    kwargs = dict(engine="indextts2", model_dir=str(tiny_model_dir), cache_hub=None, revision=None)
    synth = service(kwargs, tmp_path_factory.mktemp("tiny-data"))
    clips = [make_clip(synth, text, voice_file, seed=100 + i, generation=FAST) for i, text in enumerate(TEXTS)]
    return kwargs, synth, clips, rendered(clips, LocalRunner(synth))


def test_ray_actors_render_the_same_samples_as_this_process(ray_local, tiny, tmp_path):
    kwargs, _, clips, local = tiny
    progress = []
    store = ClipStore(tmp_path / "clips")
    with RayRunner("local", kwargs, actors=2, progress=lambda f, stage: progress.append(f)) as runner:
        assert len(runner.workers) == 2 and len({w["pid"] for w in runner.workers}) == 2
        assert runner.engine == clips[0].engine
        assert render_missing(clips, store, runner) == len(clips)
        assert render_missing(clips, store, runner) == 0   # kept clips are never rendered again
    for clip in clips:
        np.testing.assert_array_equal(store.get(clip.key), local[clip.key])
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_a_killed_actor_is_replaced_and_its_clip_rendered_elsewhere(ray_local, tiny):
    kwargs, _, clips, local = tiny
    with RayRunner("local", kwargs, actors=2) as runner:
        victim = runner.workers[0]["pid"]
        out = {}
        killer = threading.Timer(0.3, os.kill, (victim, signal.SIGKILL))

        def keep(clip, audio):
            out[clip.key] = audio
            if len(out) == 1:   # mid-render: both actors are busy with the next clips by then
                killer.start()

        runner.run(clips, keep, lambda: None)
        killer.join()
        assert runner.replaced == 1
        assert victim not in {w["pid"] for w in ray.get([a.ready.remote() for a in runner.actors])}
    assert sorted(out) == sorted(local)
    for key, audio in local.items():
        np.testing.assert_array_equal(out[key], audio)


def test_errors_come_back_as_the_services_errors_and_check_stops_the_run(ray_local, tiny, tmp_path):
    kwargs, synth, clips, _ = tiny
    bad = replace(clips[0], text="[pause abc] Fine text.")   # a malformed inline tag: the service names the field
    with RayRunner("local", kwargs, actors=1) as runner:
        with pytest.raises(ValidationError) as caught:
            rendered([bad], runner)
        assert caught.value.field == "text"
        with pytest.raises(ValueError, match="Ray actors run"):
            rendered([replace(clips[0], engine="Quick voice 1")], runner)

        def cancelled():
            raise Cancelled("stop")

        with pytest.raises(Cancelled):
            runner.run(clips, lambda clip, audio: None, cancelled)
        assert rendered(clips[:1], runner).keys() == {clips[0].key}   # still usable after a stop


def level_db(audio: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-9)


def test_quick_voice_on_ray_is_the_same_speech_within_the_bound(ray_local, voice_file, tmp_path):
    kwargs = dict(engine="quick", model_dir=None, cache_hub=str(tmp_path / "no-store"), revision=None)
    synth = service(kwargs, tmp_path / "data")
    clips = [make_clip(synth, text, voice_file, seed=7) for text in TEXTS[:4]]
    local = rendered(clips, LocalRunner(synth))
    with RayRunner("local", kwargs, actors=2) as runner:
        remote = rendered(clips, runner)
    lengths, levels = [], []
    for clip in clips:
        ours, theirs = local[clip.key], remote[clip.key]
        assert len(ours) > SR // 2
        lengths.append(abs(len(theirs) - len(ours)) / len(ours))
        levels.append(abs(level_db(theirs) - level_db(ours)))
    print(f"\n[measure] quick voice, Ray vs this process: length differences {[f'{x:.2%}' for x in lengths]}, "
          f"level differences {[f'{x:.2f} dB' for x in levels]}")
    assert max(lengths) <= QUICK_MAX_LENGTH_DIFF and max(levels) <= QUICK_MAX_LEVEL_DIFF_DB
