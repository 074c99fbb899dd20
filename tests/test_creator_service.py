"""Service side of the creator workflow: inline tags per engine call, timings, SRT, history."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from index_tts.emotion import EMOTIONS, EmotionSpec
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
        return [Segment(s.strip() + ".", len(s.split())) for s in text.split(".") if s.strip()]

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
