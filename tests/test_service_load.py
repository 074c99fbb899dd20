"""The service under load and faults: bounded queue (Busy), cancellation, timeouts, speed, and
caches that stay correct when requests for different voices interleave."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import EngineOutput, GenerationParams, Segment
from index_tts.service import (
    OUTPUT_SAMPLE_RATE,
    Busy,
    Cancelled,
    Limits,
    Synthesizer,
    SynthesisRequest,
    TimedOut,
    ValidationError,
)
from tests.test_service import quick_synth  # noqa: F401  (a fixture)

SR = 16000


def voice(f0: float = 140.0, seconds: float = 1.5) -> tuple[int, np.ndarray]:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 + 10 * np.sin(2 * np.pi * 4 * t)) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    return SR, (0.2 * wave / np.abs(wave).max()).astype(np.float32)


class HeldEngine:
    """Reports progress every 10 ms until `release` is set; counts what it finished."""

    name, version, device = "Held", "0", "cpu"

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.finished = 0

    def segments(self, text, max_tokens):
        return [Segment(text, 1)]

    def synthesize(self, request, progress, on_segment=None):
        self.started.release()
        while not self.release.wait(0.01):
            progress(0.5, "held")
        self.finished += 1
        audio = (np.sin(np.arange(OUTPUT_SAMPLE_RATE) * 0.05) * 8000).astype(np.int16)
        return EngineOutput(audio, OUTPUT_SAMPLE_RATE, [(request.text, 0.0, 1.0)])


def held_synth(tmp_path, **limits) -> tuple[Synthesizer, HeldEngine]:
    engine = HeldEngine()
    synth = Synthesizer(lambda progress: engine, data_dir=tmp_path, limits=Limits(**limits)).start()
    assert synth.wait_until_loaded(10) == "ready"
    return synth, engine


def test_a_full_queue_answers_busy_with_a_retry_time(tmp_path):
    synth, engine = held_synth(tmp_path, max_queue=2)
    request = SynthesisRequest(text="hello", voice=voice())
    with ThreadPoolExecutor(3) as pool:
        admitted = [pool.submit(synth.synthesize, request) for _ in range(3)]  # 1 running + 2 waiting
        assert engine.started.acquire(timeout=10)
        for _ in range(100):
            if synth.queue_length() == 3:
                break
            threading.Event().wait(0.01)
        assert synth.queue_length() == 3
        with pytest.raises(Busy) as caught:
            synth.synthesize(request)
        assert caught.value.retry_after_s >= 1
        assert "busy" in str(caught.value)
        engine.release.set()
        assert all(f.result(timeout=30).path.is_file() for f in admitted)
    assert synth.queue_length() == 0
    assert len(list(synth.data.outputs.iterdir())) == 3
    synth.synthesize(request)  # places are given back


def test_cancel_stops_the_engine_and_writes_nothing(tmp_path):
    synth, engine = held_synth(tmp_path)
    cancel = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(synth.synthesize, SynthesisRequest(text="hello", voice=voice()), cancel=cancel)
        assert engine.started.acquire(timeout=10)
        cancel.set()
        with pytest.raises(Cancelled):
            job.result(timeout=10)
    assert engine.finished == 0
    assert list(synth.data.outputs.iterdir()) == []
    assert synth.queue_length() == 0


def test_cancel_while_waiting_for_the_engine(tmp_path):
    synth, engine = held_synth(tmp_path)
    cancel = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(synth.synthesize, SynthesisRequest(text="one", voice=voice()))
        assert engine.started.acquire(timeout=10)
        second = pool.submit(synth.synthesize, SynthesisRequest(text="two", voice=voice()), cancel=cancel)
        cancel.set()
        with pytest.raises(Cancelled):
            second.result(timeout=10)
        engine.release.set()
        assert first.result(timeout=10).path.is_file()
    assert engine.finished == 1
    assert len(list(synth.data.outputs.iterdir())) == 1


def test_timeout_gives_up_and_writes_nothing(tmp_path):
    synth, engine = held_synth(tmp_path, request_timeout_s=0.3)
    with pytest.raises(TimedOut, match="0.3 s"):
        synth.synthesize(SynthesisRequest(text="hello", voice=voice()))
    assert list(synth.data.outputs.iterdir()) == []
    engine.release.set()


@pytest.mark.parametrize("speed", [float("nan"), float("inf"), 0.1, 4.5, True, "2"])
def test_bad_speed_is_refused_by_name(tmp_path, speed):
    synth, engine = held_synth(tmp_path)
    with pytest.raises(ValidationError) as caught:
        synth.synthesize(SynthesisRequest(text="hello", voice=voice(), speed=speed))
    assert caught.value.field == "speed"
    assert engine.started.acquire(timeout=0) is False  # refused before the engine ran


def test_speed_changes_the_duration_and_streams_what_is_written(quick_synth):
    text = ("Speed changes how long this takes, and this first sentence keeps going for a while longer. "
            "The pitch should stay where it was, even though the words now come much faster than before.")
    gen = GenerationParams(seed=5, max_text_tokens_per_segment=20)
    normal = quick_synth.synthesize(SynthesisRequest(text=text, voice=voice(), generation=gen))
    chunks = []
    fast = quick_synth.synthesize(SynthesisRequest(text=text, voice=voice(), generation=gen, speed=2.0),
                                  on_audio=chunks.append)
    assert fast.duration_s == pytest.approx(normal.duration_s / 2, rel=0.03)
    written, _ = sf.read(fast.path, dtype="int16")
    assert len(chunks) >= 2
    np.testing.assert_array_equal(np.concatenate(chunks), written)


def test_interleaved_voices_give_the_same_audio_as_alone(quick_synth):
    """Per-voice caches keyed by content: concurrent requests for two voices never mix them up."""
    gen = GenerationParams(seed=11)
    low, high = voice(f0=100.0), voice(f0=220.0)

    def run(v):
        result = quick_synth.synthesize(SynthesisRequest(text="Which voice is this?", voice=v, generation=gen,
                                                         emotion=EmotionSpec()))
        return sf.read(result.path, dtype="int16")[0]

    alone = {"low": run(low), "high": run(high)}
    assert not np.array_equal(alone["low"], alone["high"])
    with ThreadPoolExecutor(4) as pool:
        names = ["low", "high"] * 3
        results = list(pool.map(lambda n: run(low if n == "low" else high), names))
    for name, audio in zip(names, results):
        np.testing.assert_array_equal(audio, alone[name])


def test_leftovers_of_a_killed_writer_are_removed_at_start(tmp_path):
    """What SIGKILL can leave mid-write (atomic-write temp files, a voice moved aside for deletion)
    is cleared when the next Synthesizer starts; real files stay."""
    outputs, voice_dir = tmp_path / "outputs", tmp_path / "voices" / "alice"
    outputs.mkdir(parents=True)
    voice_dir.mkdir(parents=True)
    (outputs / "20260101T000000_000000Z_abcd.wav").write_bytes(b"finished")
    (outputs / ".20260101T000001_000000Z_ef01.wav.k2j3.tmp").write_bytes(b"half")
    (voice_dir / "voice.json").write_text("{}")
    (voice_dir / ".voice.wav.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "voices" / ".deleted-bob-1234").mkdir()
    synth, engine = held_synth(tmp_path)
    assert sorted(p.name for p in outputs.iterdir()) == ["20260101T000000_000000Z_abcd.wav"]
    assert sorted(p.name for p in voice_dir.iterdir()) == ["voice.json"]
    assert sorted(p.name for p in (tmp_path / "voices").iterdir()) == ["alice"]
    engine.release.set()


def test_an_engine_that_cannot_stream_sends_everything_as_one_chunk(tmp_path):
    class OldEngine:  # synthesize() without on_segment, as engines written before streaming
        name, version, device = "Old", "0", "cpu"

        def segments(self, text, max_tokens):
            return [Segment(text, 1)]

        def synthesize(self, request, progress):
            audio = (np.sin(np.arange(OUTPUT_SAMPLE_RATE) * 0.05) * 8000).astype(np.int16)
            return EngineOutput(audio, OUTPUT_SAMPLE_RATE, [(request.text, 0.0, 1.0)])

    synth = Synthesizer(lambda progress: OldEngine(), data_dir=tmp_path).start()
    assert synth.wait_until_loaded(10) == "ready"
    chunks = []
    result = synth.synthesize(SynthesisRequest(text="hello", voice=voice()), on_audio=chunks.append)
    assert len(chunks) == 1
    np.testing.assert_array_equal(chunks[0], sf.read(result.path, dtype="int16")[0])
