"""The Dubbing tab's handlers without a browser (quick voice), as a click would call them."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from index_tts.engines.quick import QuickVoiceEngine
from index_tts.service import Synthesizer
from index_tts.ui import dubbing
from index_tts.ui.page import MAX_UI_ROLES
from tests.http_server import write_voice

VTT = """WEBVTT

00:00.500 --> 00:02.500
<v Bob>Good morning, Alice.

00:03.000 --> 00:05.000
Alice: Good morning to you.
"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-dub")
    synth = Synthesizer(QuickVoiceEngine.load, data_dir=root / "data").start()
    assert synth.wait_until_loaded(30) == "ready"
    synth.save_voice("ann", str(write_voice(root / "ann.wav", 220.0)))
    synth.save_voice("ben", str(write_voice(root / "ben.wav", 110.0)))
    return synth


def test_roles_are_offered_then_dubbed_and_one_cue_regenerated(synth):
    empty = [""] * (2 * MAX_UI_ROLES)
    found = dubbing.detect_roles(None, VTT, "en", *empty)
    assert [found[3 * n + 1] for n in range(2)] == ["Bob", "Alice"] and found[-1] == "Roles: Bob, Alice"
    assert found[0]["visible"] and not found[6]["visible"]
    roles = ["Bob", "ben", "Alice", "ann"] + [""] * (2 * MAX_UI_ROLES - 4)
    job, track, info, svg, zip_path, rows, cue, cue_audio = dubbing.dub(synth, "t1", None, VTT, None, "fit", "wav", 4, "en", *roles)
    assert [r[3] for r in rows] == ["Bob", "Alice"] and "2 cues" in info and "(2 rendered now" in info
    assert svg.count('class="segment"') == 2 and zip_path.endswith(".zip")
    before = sf.read(cue_audio, dtype="int16")[0]
    again = dubbing.regenerate_cue(synth, "t2", job, 1, "builtin:angry", "en")
    assert again[0] == job and "(1 rendered now" in again[2]
    assert not np.array_equal(sf.read(again[7], dtype="int16")[0], before)
    assert dubbing.play_cue(synth, job, 2).endswith("002.wav")


def test_errors_are_messages_naming_the_cue(synth):
    bad = "1\n00:00:02,000 --> 00:00:01,000\nHello.\n"
    with pytest.raises(gr.Error, match="cue 1"):
        dubbing.dub(synth, "t3", None, bad, "ann", "natural", "wav", None, "en", *[""] * (2 * MAX_UI_ROLES))
    with pytest.raises(gr.Error, match="job"):
        dubbing.regenerate_cue(synth, "t4", "", 1, None, "en")


def test_cancel_sets_the_running_jobs_event():
    import threading
    event = dubbing._CANCELS["tok"] = threading.Event()
    dubbing.cancel_job("tok")
    assert event.is_set()
    dubbing._CANCELS.pop("tok")
