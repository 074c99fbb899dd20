"""Service side of the creator workflow: inline tags per engine call, timings, SRT, history."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from index_tts.emotion import EMOTIONS, EmotionSpec, builtin_presets
from index_tts.engines.base import EngineOutput, GenerationParams, Segment
from index_tts.service import OUTPUT_SAMPLE_RATE, Synthesizer, SynthesisRequest, ValidationError
from index_tts.subtitles import parse_srt, timestamp, to_srt

SR = OUTPUT_SAMPLE_RATE
WORD_S = 0.2


def voice(f0: float = 140.0, seconds: float = 1.0):
    t = np.arange(int(seconds * 16000)) / 16000
    return 16000, (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


class RecordingEngine:
    """Says each word as WORD_S of a constant level and remembers every call it got."""

    name, version, device = "Recorder", "1", "cpu"

    def __init__(self):
        self.calls = []

    def segments(self, text, max_tokens):
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]
        return [Segment(s.strip(), len(s.split())) for s in sentences]

    def synthesize(self, request, progress, on_segment=None):
        self.calls.append((request.text, request.emotion, request.voice_key))
        segs = self.segments(request.text, 0)
        gap = np.zeros(int(SR * request.generation.interval_silence_ms / 1000), np.int16)
        pieces, spans, t = [], [], 0
        for i, seg in enumerate(segs):
            audio = np.full(int(SR * WORD_S * seg.n_tokens), 1000 + 100 * len(self.calls), np.int16)
            if on_segment:
                on_segment(i, audio, SR)
            pieces += ([gap] if i else []) + [audio]
            spans.append((seg.text, t / SR, (t + audio.size) / SR))
            t += audio.size + gap.size
        return EngineOutput(np.concatenate(pieces), SR, spans)


@pytest.fixture
def synth(tmp_path):
    engine = RecordingEngine()
    s = Synthesizer(lambda progress: engine, data_dir=tmp_path).start()
    assert s.wait_until_loaded(10) == "ready"
    s.engine = engine
    return s


def test_inline_tags_reach_the_engine_per_part_with_pauses(synth):
    request = SynthesisRequest(text="Plain start. [happy] Good news. Really good. [sad:0.5] Bad news. [pause 700ms] The end.",
                               voice=voice(), generation=GenerationParams(interval_silence_ms=100))
    result = synth.synthesize(request)
    texts = [c[0] for c in synth.engine.calls]
    assert texts == ["Plain start.", "Good news. Really good.", "Bad news.", "The end."]
    emotions = [c[1] for c in synth.engine.calls]
    assert emotions[0] == EmotionSpec()
    assert emotions[1].mode == "vector" and emotions[1].vector[EMOTIONS.index("happy")] > 0 and emotions[1].weight == 0.8
    assert emotions[2].vector[EMOTIONS.index("sad")] > 0 and emotions[2].weight == 0.5 and emotions[3] == emotions[2]
    assert len({c[2] for c in synth.engine.calls}) == 1  # one voice throughout

    labels = [s.emotion for s in result.timeline]
    assert labels[0] == "same as voice" and labels[1].startswith("happy") and labels[3].startswith("sad 0.80 (weight 0.50)")
    # Timings: parts meeting without a tag pause get the segment gap; the tag pause replaces it.
    starts = [round(s.start_s, 3) for s in result.timeline]
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.6]
    audio, rate = sf.read(result.path, dtype="int16")
    assert len(audio) / rate == pytest.approx(3.0, abs=1e-3) and result.timeline[-1].end_s == pytest.approx(3.0, abs=1e-3)
    assert np.all(audio[int(1.9 * SR): int(2.6 * SR)] == 0)  # the 700 ms pause is silent


def test_streamed_chunks_equal_the_file_with_tags(synth):
    chunks = []
    result = synth.synthesize(SynthesisRequest(text="[pause 200ms] One. Two. [angry] Three. [pause 300ms]", voice=voice()),
                              on_audio=chunks.append)
    written, _ = sf.read(result.path, dtype="int16")
    np.testing.assert_array_equal(np.concatenate(chunks), written)
    assert result.timeline[0].start_s == pytest.approx(0.2) and result.duration_s == pytest.approx(result.timeline[-1].end_s + 0.3)


def test_malformed_tag_is_a_text_error_that_writes_nothing(synth):
    with pytest.raises(ValidationError) as caught:
        synth.synthesize(SynthesisRequest(text="Fine. [hapy] Oops.", voice=voice()))
    assert caught.value.field == "text" and "column 7" in str(caught.value) and "hapy" in str(caught.value)
    assert synth.engine.calls == [] and list(synth.data.outputs.iterdir()) == []
    with pytest.raises(ValidationError, match="column 1"):
        synth.preview_segments("[sad:2] x", 120)


def test_preview_shows_each_segments_emotion(synth):
    rows = synth.preview_segments("Calm here. [surprised] Wow. Again. [pause 1s] Done.", 120)
    assert [(r.text, r.emotion.split(" ")[0] if r.emotion else "", r.pause_after_ms) for r in rows] == [
        ("Calm here.", "", 0), ("Wow.", "surprised", 0), ("Again.", "surprised", 1000), ("Done.", "surprised", 0)]


def test_srt_last_cue_ends_at_the_audio_end_and_history_regenerates(synth, tmp_path):
    result = synth.synthesize(SynthesisRequest(text="One two three. [calm] Four five.", voice=voice(), output_format="flac"))
    cues = parse_srt(result.srt_path.read_text(encoding="utf-8"))
    assert [c[0] for c in cues] == ["One two three.", "Four five."]
    assert abs(cues[-1][2] - sf.info(result.path).duration) < 0.1

    # A fresh service on the same folder (a restart) still has the entry and can run it again.
    again = Synthesizer(lambda progress: synth.engine, data_dir=synth.data.root).start()
    assert again.wait_until_loaded(10) == "ready"
    (entry,) = again.history.list()
    assert entry["id"] == result.history_id and entry["format"] == "flac" and entry["segments"][1]["emotion"].startswith("calm")
    request = again.request_from_history(entry["id"])
    assert request.text == "One two three. [calm] Four five." and request.output_format == "flac"
    repeat = again.synthesize(request)
    assert synth.engine.calls[-2:] == synth.engine.calls[-4:-2]  # the same texts, emotions and voice
    assert len(again.history.list()) == 2
    assert again.history.delete(result.history_id)
    assert not result.path.exists() and not result.srt_path.exists() and repeat.path.exists()
    with pytest.raises(ValidationError) as caught:
        again.request_from_history(result.history_id)
    assert caught.value.field == "history"
    with pytest.raises(ValueError):
        again.history.get("../../etc/passwd")


def test_srt_format():
    assert timestamp(3723.4567) == "01:02:03,457"
    srt = to_srt([("Hello there.", 0.0, 1.25), ("  ", 1.3, 1.4), ("A much longer line of subtitle text that has to wrap somewhere.", 1.5, 4.0)])
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n00:00:01,500 --> 00:00:04,000\n")
    assert all(len(line) <= 42 for line in srt.splitlines())
    assert parse_srt(srt)[1][1:] == (1.5, 4.0)


# ---------------------------------------------------------------------------------------------
# dialogue scripts


def test_dialogue_four_lines_two_roles_in_order(synth):
    import io
    import zipfile

    from index_tts.service import RoleSetting, compose, parse_script, roles_of

    synth.save_voice("Low", voice(110))
    synth.save_voice("High", voice(230))
    script = "# scene 1\nAlice: Hello Bob.\n\nBob： Hi Alice.\nAlice: [sad] I lost it.\nBob: Lost what?\n"
    lines = parse_script(script)
    assert [(l.number, l.role) for l in lines] == [(2, "Alice"), (4, "Bob"), (5, "Alice"), (6, "Bob")]
    assert roles_of(lines) == ["Alice", "Bob"]
    happy = EmotionSpec(mode="vector", vector=(0.7, 0, 0, 0, 0, 0, 0, 0), weight=0.6)
    result = compose(synth, script, {"Alice": RoleSetting("Low"), "Bob": RoleSetting("High", happy)}, pause_ms=500,
                     output_format="ogg")

    calls = synth.engine.calls
    assert [c[0] for c in calls] == ["Hello Bob.", "Hi Alice.", "I lost it.", "Lost what?"]
    assert calls[0][2] == calls[2][2] != calls[1][2] == calls[3][2]   # each role keeps its own voice
    assert calls[1][1] == happy and calls[3][1] == happy and calls[0][1] == EmotionSpec()
    assert calls[2][1].vector[EMOTIONS.index("sad")] > 0                # the inline tag wins inside a line
    assert [(r, v) for r, v, *_ in result.lines] == [("Alice", "Low"), ("Bob", "High"), ("Alice", "Low"), ("Bob", "High")]
    starts = [round(line[3], 3) for line in result.lines]
    assert starts == [0.0, 0.9, 1.8, 2.9]    # 0.2 s per word, 0.5 s between lines
    with zipfile.ZipFile(result.zip_path) as archive:
        assert archive.namelist() == ["01_Alice.ogg", "02_Bob.ogg", "03_Alice.ogg", "04_Bob.ogg"]
        first, rate = sf.read(io.BytesIO(archive.read("01_Alice.ogg")))
        assert abs(len(first) / rate - 0.4) < 0.05
    cues = parse_srt(result.srt_path.read_text(encoding="utf-8"))
    assert [c[0] for c in cues] == ["Alice: Hello Bob.", "Bob: Hi Alice.", "Alice: I lost it.", "Bob: Lost what?"]
    assert abs(cues[-1][2] - sf.info(result.path).duration) < 0.1
    (entry,) = synth.history.list()
    assert entry["kind"] == "dialogue" and entry["request"]["roles"]["Bob"]["voice"] == "High"


@pytest.mark.parametrize("script, roles, field, words", [
    ("", {}, "script", "empty"),
    ("Alice: hi\njust words\n", {"Alice": "Low"}, "script", "line 2"),
    ("Alice: hi\nBob: yo\n", {"Alice": "Low"}, "roles", "Bob"),
    ("Alice: hi [sadd]\n", {"Alice": "Low"}, "script", "line 1 (Alice)"),
    ("Alice: hi\n", {"Alice": "Nobody"}, "voice", "Nobody"),
])
def test_bad_dialogues_name_the_problem_and_write_nothing(synth, script, roles, field, words):
    from index_tts.service import RoleSetting, compose

    synth.save_voice("Low", voice(110))
    with pytest.raises(ValidationError) as caught:
        compose(synth, script, {r: RoleSetting(v) for r, v in roles.items()})
    assert caught.value.field == field and words in str(caught.value)
    assert list(synth.data.outputs.iterdir()) == [] and synth.history.list() == []


# ---------------------------------------------------------------------------------------------
# voice library zip


def test_voice_library_zip_round_trip_never_overwrites_unasked(synth, tmp_path):
    import zipfile

    synth.save_voice("Low", voice(110), tags="deep, calm", note="narrator", default_emotion={"preset": "calm"})
    synth.save_voice("High", voice(230))
    exported = tmp_path / "library.zip"
    exported.write_bytes(synth.export_voices())
    with zipfile.ZipFile(exported) as archive:
        assert sorted(archive.namelist()) == ["High/voice.json", "High/voice.wav", "Low/voice.json", "Low/voice.wav"]

    other = Synthesizer(lambda progress: synth.engine, data_dir=tmp_path / "other")
    other.save_voice("High", voice(300), note="mine")
    imported, skipped = other.import_voices(exported)
    assert imported == ["Low"] and skipped == ["High"]
    assert other.voices.get("High").note == "mine"            # not replaced without asking
    low = other.voices.get("Low")
    assert low.tags == ("deep", "calm") and low.default_emotion == {"preset": "calm"}
    assert sf.read(low.audio_path)[0].shape == sf.read(synth.voices.get("Low").audio_path)[0].shape
    assert other.import_voices(exported, overwrite=True) == (["High", "Low"], [])
    assert other.voices.get("High").note == ""


def bad_zip(path, members):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("members, words", [
    ({"../evil/voice.json": b"{}", "../evil/voice.wav": b""}, "is not <name>/voice.json"),
    ({"/abs/voice.wav": b""}, "is not <name>/voice.json"),
    ({"a/b/voice.wav": b""}, "is not <name>/voice.json"),
    ({"Fine/voice.json": b"{}", "Fine/notes.txt": b"x"}, "notes.txt"),
    ({"Half/voice.json": b"{}"}, "needs both"),
    ({"Junk/voice.json": b"{}", "Junk/voice.wav": b"not audio at all"}, "not audio"),
    ({"Meta/voice.json": b"[1", "Meta/voice.wav": b"x"}, "Meta"),
    ({"Bad name!/voice.json": b"{}", "Bad name!/voice.wav": b"x"}, "not a valid voice name"),
])
def test_bad_library_zips_are_refused_whole(synth, tmp_path, members, words):
    import io as _io

    silent = _io.BytesIO()
    sf.write(silent, np.zeros(16000, np.float32), 16000, format="WAV")
    good = _io.BytesIO()
    sf.write(good, voice()[1], 16000, format="WAV")
    members = {"Good/voice.json": b"{}", "Good/voice.wav": good.getvalue(), **members}
    with pytest.raises(ValidationError) as caught:
        synth.import_voices(bad_zip(tmp_path / "bad.zip", members))
    assert caught.value.field == "voices_zip" and words in str(caught.value)
    assert synth.voices.scan()[0] == []          # nothing at all was imported
    with pytest.raises(ValidationError, match="silent"):
        synth.import_voices(bad_zip(tmp_path / "silent.zip", {"Q/voice.json": b"{}", "Q/voice.wav": silent.getvalue()}))
    with pytest.raises(ValidationError, match="not a zip"):
        synth.import_voices(bad_zip(tmp_path / "x.zip", {}).with_name("missing.zip"))


def test_user_emotion_presets_persist_and_are_checked(tmp_path):
    from index_tts.storage import EmotionPresetStore

    store = EmotionPresetStore(tmp_path / "emotion_presets.json")
    preset = {"name": "Whisper-sad", "mode": "vector", "sliders": [0, 0, 0.6, 0, 0, 0.3, 0, 0], "weight": 0.7}
    assert store.save(preset)[1] is False
    assert store.save({**preset, "name": "whisper-SAD", "weight": 0.5})[1] is True
    again = EmotionPresetStore(tmp_path / "emotion_presets.json").list()
    assert [(p["name"], p["weight"]) for p in again] == [("whisper-SAD", 0.5)]
    for bad, field in [({**preset, "mode": "audio"}, "mode"), ({**preset, "sliders": [2] * 8}, "sliders"),
                       ({**preset, "weight": True}, "weight"), ({**preset, "name": " "}, "name")]:
        with pytest.raises(ValueError, match=field):
            store.save(bad)
    assert len(store.list()) == 1
    assert store.delete("WHISPER-sad") and store.list() == [] and not store.delete("nothing")
    (tmp_path / "emotion_presets.json").write_text("{broken")
    assert store.list() == [] and "unreadable" in store.problem


def test_dialogue_regenerates_from_history(synth):
    from index_tts.service import RoleSetting, compose, compose_from_history

    synth.save_voice("Low", voice(110))
    first = compose(synth, "A: One two.\nB: Three.", {"A": RoleSetting("Low"), "B": RoleSetting("Low")}, pause_ms=100)
    calls = list(synth.engine.calls)
    again = compose_from_history(synth, first.history_id)
    assert synth.engine.calls[len(calls):] == calls and again.history_id != first.history_id
    assert again.lines == first.lines


def test_waveform_and_emotion_choices(tmp_path):
    from index_tts.service import TimedSegment
    from index_tts.ui.creator import VOICE_DEFAULT, emotion_choices, emotion_from_choice, waveform_svg

    builtin = builtin_presets()
    user = [{"name": "Mine", "mode": "text", "weight": 0.4, "sliders": [0.0] * 8, "text": "tired"}]
    values = [v for _, v in emotion_choices(builtin, user, "en", "Same", "Default")]
    assert values[:3] == [VOICE_DEFAULT, "same", "builtin:happy"] and values[-1] == "user:Mine"
    angry = emotion_from_choice("builtin:angry", builtin, user)
    assert angry.mode == "vector" and angry.vector[EMOTIONS.index("angry")] == pytest.approx(0.7) and angry.weight == 0.8
    assert emotion_from_choice("user:Mine", builtin, user) == EmotionSpec(mode="text", weight=0.4, text="tired")
    assert emotion_from_choice(VOICE_DEFAULT, builtin, user, "builtin:calm").vector[EMOTIONS.index("calm")] > 0
    assert emotion_from_choice(VOICE_DEFAULT, builtin, user, None) == EmotionSpec()

    path = tmp_path / "a.wav"
    sf.write(path, np.sin(np.linspace(0, 300, SR)).astype(np.float32) * 0.5, SR)
    svg = waveform_svg(path, [TimedSegment("One <b>", 0.0, 0.4, "happy 0.75 (weight 0.80)"),
                              TimedSegment("Two", 0.5, 1.0, "sad 0.80 (weight 0.60)")], "Waveform")
    assert svg.count('class="segment"') == 2 and 'data-emotion="sad 0.80 (weight 0.60)"' in svg
    assert "<b>" not in svg and 'aria-label="Waveform"' in svg
