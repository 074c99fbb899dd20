"""Subtitle-timed dubbing through the service, on the quick voice: placement to the sample, the
three fit modes, per-cue regenerate, roles, and bad files refused with the cue number."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

from index_tts.engines.quick import QuickVoiceEngine
from index_tts.service import (OUTPUT_SAMPLE_RATE, Cancelled, EmotionSpec, GenerationParams, RoleSetting, Synthesizer,
                               ValidationError, subtitle_roles)
from tests.http_server import write_voice

SRT = """1
00:00:00,500 --> 00:00:03,000
The weather is bright today.

2
00:00:03,200 --> 00:00:03,700
We will walk along the river after lunch and then go home.

3
00:00:08,000 --> 00:00:10,000
<i>Goodbye.</i>
"""
VTT = """WEBVTT

NOTE two speakers

00:01.000 --> 00:03.000
<v Bob>Hello there, Alice.

00:03.500 --> 00:06.000
Alice: [happy]Hello, Bob!
"""
ANGRY = EmotionSpec(mode="vector", vector=(0.0, 1.0, 0, 0, 0, 0, 0, 0), weight=1.0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Synthesizer:
    root = tmp_path_factory.mktemp("dub")
    synth = Synthesizer(QuickVoiceEngine.load, data_dir=root / "data").start()
    assert synth.wait_until_loaded(30) == "ready"
    synth.save_voice("alice", str(write_voice(root / "alice.wav", 210.0)))
    synth.save_voice("bob", str(write_voice(root / "bob.wav", 110.0)))
    return synth


def wav(path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="int16")
    assert rate == OUTPUT_SAMPLE_RATE
    return audio


def test_natural_places_every_cue_at_its_start_sample_and_reports_the_overrun(synth):
    seen = []
    result = synth.create_dubbing(SRT.encode(), voice="alice", fit="natural", generation=GenerationParams(seed=3),
                                  on_cue=lambda row, audio: seen.append(row["index"]))
    assert seen == [1, 2, 3] and result.rendered == 3
    track = wav(result.track_path)
    cues = [wav(p) for p in result.cue_paths]
    for row, audio in zip(result.report, cues):
        start = round(row["start"] * OUTPUT_SAMPLE_RATE)
        assert row["actual"] == pytest.approx(len(audio) / OUTPUT_SAMPLE_RATE, abs=1e-4)
        assert row["factor"] == 1.0 and row["stretch"] == 1.0
        if row["index"] != 2:  # cue 2 overruns into silence only: cue 3 starts well after it
            assert np.array_equal(track[start: start + len(audio)], audio)
        assert not track[start - 50: start].any() or row["index"] == 1  # silence right before each cue
    overrun = {row["index"]: row["overrun"] for row in result.report}
    assert overrun[2] > 0.5 and overrun[1] == 0 and overrun[3] == 0  # 0.5 s slot for a long sentence
    assert result.report[1]["actual"] == pytest.approx(0.5 + overrun[2], abs=1e-3)
    report = json.loads((result.folder / "report.json").read_text())
    assert [set(r) >= {"index", "start", "end", "target", "actual", "factor", "overrun"} for r in report["cues"]] == [True] * 3
    assert result.retimed_path is not None and "00:00:03,200 -->" in result.retimed_path.read_text()


def test_fit_ends_every_cue_by_its_end_and_never_overlaps(synth):
    result = synth.create_dubbing(SRT, voice="alice", fit="fit", generation=GenerationParams(seed=3))
    rows = result.report
    for row, after in zip(rows, rows[1:] + [None]):
        assert row["actual"] <= row["target"] + 1e-4 and row["overrun"] == 0
        if after:
            assert row["actual_end"] <= after["start"]
    assert rows[0]["factor"] == 1.0 and rows[0]["stretch"] == 1.0  # it fits as spoken
    # cue 2 cannot fit even at the fastest factor: the engine goes to 0.5, WSOLA does the rest
    assert rows[1]["factor"] == 0.5 and rows[1]["stretch"] > 1.0 and rows[1]["actual"] == pytest.approx(0.5, abs=1e-3)
    track = wav(result.track_path)
    for row, path in zip(rows, result.cue_paths):
        audio, start = wav(path), round(row["start"] * OUTPUT_SAMPLE_RATE)
        assert np.array_equal(track[start: start + len(audio)], audio)


def test_fit_compresses_with_the_engine_when_the_range_allows(synth):
    srt = "1\n00:00:01,000 --> 00:00:02,400\nThe weather is bright and clear today.\n"
    natural = synth.create_dubbing(srt, voice="alice", fit="natural", generation=GenerationParams(seed=3))
    fitted = synth.create_dubbing(srt, voice="alice", fit="fit", generation=GenerationParams(seed=3))
    assert natural.report[0]["overrun"] > 0
    row = fitted.report[0]
    assert 0.5 < row["factor"] < 1.0 and row["stretch"] == 1.0
    assert 1.4 - 0.02 <= row["actual"] <= 1.4


def test_stretch_makes_every_cue_fill_its_slot(synth):
    result = synth.create_dubbing(SRT, voice="alice", fit="stretch", generation=GenerationParams(seed=3))
    for row in result.report:
        assert row["actual"] == pytest.approx(row["target"], abs=1 / OUTPUT_SAMPLE_RATE) and row["factor"] == 1.0
    assert result.retimed_path is None  # nothing moved


def test_regenerating_one_cue_renders_it_alone_and_keeps_the_rest(synth):
    first = synth.create_dubbing(SRT, voice="alice", fit="natural", generation=GenerationParams(seed=3))
    before = [p.read_bytes() for p in first.cue_paths]
    again = synth.regenerate_dub_cue(first.job_id, 1, emotion=ANGRY)
    assert again.rendered == 1 and again.job_id == first.job_id
    after = [p.read_bytes() for p in again.cue_paths]
    assert after[1:] == before[1:] and after[0] != before[0]
    assert again.report[0]["emotion"] == "custom" and again.report[1]["emotion"] == "role"
    reseeded = synth.regenerate_dub_cue(first.job_id, 3, seed=99)
    assert reseeded.rendered == 1 and reseeded.report[2]["seed"] == 99
    assert len(list((first.folder / "clips").glob("*.wav"))) == 3  # replaced clips are not kept
    with pytest.raises(ValidationError) as caught:
        synth.regenerate_dub_cue(first.job_id, 7)
    assert caught.value.field == "cue"


def test_roles_voice_each_cue_and_the_zip_holds_everything(synth):
    assert subtitle_roles(VTT) == ["Bob", "Alice"]
    result = synth.create_dubbing(VTT, roles={"Alice": RoleSetting("alice"), "Bob": RoleSetting("bob", ANGRY)},
                                  output_format="flac", generation=GenerationParams(seed=1))
    assert [(r["role"], r["text"]) for r in result.report] == [("Bob", "Hello there, Alice."), ("Alice", "[happy]Hello, Bob!")]
    names = set(zipfile.ZipFile(io.BytesIO(synth.dubbing_zip(result.job_id))).namelist())
    assert {"track.flac", "cues/001.flac", "cues/002.flac", "report.json", "source.vtt"} <= names
    with pytest.raises(ValidationError) as caught:
        synth.create_dubbing(VTT, roles={"Alice": RoleSetting("alice")})
    assert caught.value.field == "roles" and "cue 1" in str(caught.value)


BAD = {
    "reversed": ("1\n00:00:02,000 --> 00:00:01,000\nHi.\n", 1),
    "overlap": ("1\n00:00:01,000 --> 00:00:03,000\nHi.\n\n2\n00:00:02,000 --> 00:00:04,000\nYo.\n", 2),
    "timestamp": ("1\n00:00:01,000 --> 00:00:02,000\nHi.\n\n2\n00:00:03 --> 00:00:04,000\nYo.\n", 2),
    "empty": ("1\n00:00:01,000 --> 00:00:02,000\nHi.\n\n2\n00:00:03,000 --> 00:00:04,000\n<i> </i>\n", 2),
    "encoding": (b"1\n00:00:01,000 --> 00:00:02,000\nHi.\n\n2\n00:00:03,000 --> 00:00:04,000\nCaf\xe9\n", 2),
    "many": ("".join(f"{i}\n00:{i // 60:02d}:{i % 60:02d},000 --> 00:{i // 60:02d}:{i % 60:02d},500\nHi.\n\n"
                     for i in range(1, 2100)), 2001),
    "bad tag": ("1\n00:00:01,000 --> 00:00:02,000\nHi.\n\n2\n00:00:03,000 --> 00:00:04,000\n[pause 9x]Yo.\n", 2),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_name_the_cue_and_write_nothing(synth, case):
    data, cue = BAD[case]
    root = synth.data.root / "dubbing"
    before = sorted(root.rglob("*")) if root.exists() else []
    with pytest.raises(ValidationError) as caught:
        synth.create_dubbing(data, voice="alice")
    assert caught.value.field == "subtitles" and f"cue {cue}:" in str(caught.value), str(caught.value)
    assert (sorted(root.rglob("*")) if root.exists() else []) == before


def test_bad_settings_are_refused_before_anything_is_written(synth):
    for kwargs, field in (({"voice": "nobody"}, "voice"), ({"voice": "alice", "fit": "squeeze"}, "fit"),
                          ({"voice": "alice", "output_format": "pcm"}, "output_format"), ({}, "voice")):
        with pytest.raises(ValidationError) as caught:
            synth.create_dubbing(SRT, **kwargs)
        assert caught.value.field == field


def test_a_cancelled_job_stops(synth):
    import threading
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        synth.create_dubbing(SRT, voice="alice", cancel=cancel)
