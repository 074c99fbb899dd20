"""The Synthesizer: background loading states, NotReady, serialized synthesis, output files."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from index_tts.emotion import EmotionSpec
from index_tts.engines import select_engine
from index_tts.engines.base import EngineOutput, GenerationParams, Segment
from index_tts.service import (
    OUTPUT_SAMPLE_RATE,
    NotReady,
    Synthesizer,
    SynthesisRequest,
    ValidationError,
)

SR = 16000


def voice(seconds: float = 1.5) -> tuple[int, np.ndarray]:
    t = np.arange(int(seconds * SR)) / SR
    # A vowel-like buzz with a little vibrato: something the quick voice can analyse.
    f0 = 140 + 10 * np.sin(2 * np.pi * 4 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    return SR, (0.2 * wave / np.abs(wave).max()).astype(np.float32)


class FakeEngine:
    name, version, device = "Fake", "9.9", "cpu"

    def __init__(self, rate: int = 24000):
        self.rate = rate
        self.active = 0
        self.max_active = 0
        self.guard = threading.Lock()

    def segments(self, text, max_tokens):
        return [Segment(w, 1) for w in text.split()]

    def synthesize(self, request, progress):
        with self.guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            progress(0.5, "speaking")
            threading.Event().wait(0.02)  # give a concurrent caller the chance to overlap
            n = int(0.25 * self.rate * len(request.text.split()))
            return EngineOutput((np.ones(n) * 1000).astype(np.int16), self.rate, [(request.text, 0.0, n / self.rate)])
        finally:
            with self.guard:
                self.active -= 1


class Gate:
    """A factory that reports progress, then waits until the test lets it finish (or fail)."""

    def __init__(self, fail: bool = False):
        self.release = threading.Event()
        self.reported = threading.Event()
        self.fail = fail
        self.engine = FakeEngine()

    def __call__(self, progress):
        progress(0.42, "reading weights")
        self.reported.set()
        assert self.release.wait(10)
        if self.fail:
            raise RuntimeError("gpt.pth is truncated")
        return self.engine


def wait_for(predicate, timeout=10.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


def test_loading_then_ready(tmp_path):
    gate = Gate()
    synth = Synthesizer(gate, data_dir=tmp_path).start()
    assert gate.reported.wait(10)
    status = synth.status()
    assert status.state == "loading"
    assert status.progress == pytest.approx(0.42)
    assert status.message == "reading weights"

    request = SynthesisRequest(text="hello world", voice=voice())
    with pytest.raises(NotReady) as info:
        synth.synthesize(request)
    assert str(info.value) == "model is loading (42%)"
    assert info.value.progress == pytest.approx(0.42) and info.value.state == "loading"
    with pytest.raises(NotReady, match="model is loading"):
        synth.preview_segments("hello", 120)

    gate.release.set()
    assert synth.wait_until_loaded(10) == "ready"
    status = synth.status()
    assert (status.state, status.progress, status.engine, status.version, status.device) == ("ready", 1.0, "Fake", "9.9", "cpu")
    assert not status.is_quick_voice and status.help == ""
    assert [s.text for s in synth.preview_segments("hello big world", 120)] == ["hello", "big", "world"]

    stages = []
    result = synth.synthesize(request, lambda f, stage: stages.append((f, stage)))
    assert result.path.parent == synth.data.outputs and result.path.is_file()
    audio, rate = sf.read(result.path, dtype="int16")
    info = sf.info(result.path)
    assert rate == OUTPUT_SAMPLE_RATE and info.subtype == "PCM_16" and info.channels == 1
    # 2 words * 0.25 s at 24 kHz, resampled to 22.05 kHz.
    assert len(audio) == pytest.approx(0.5 * OUTPUT_SAMPLE_RATE, abs=5)
    assert result.duration_s == pytest.approx(0.5, abs=1e-3)
    names = [s for _, s in stages]
    assert "speaking" in names and names[-2:] == ["saving audio", "done"]
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [p.name for p in synth.data.outputs.iterdir()] == [result.path.name]  # no temp files left


def test_failed_load_is_reported(tmp_path):
    gate = Gate(fail=True)
    synth = Synthesizer(gate, data_dir=tmp_path).start()
    gate.release.set()
    assert synth.wait_until_loaded(10) == "failed"
    status = synth.status()
    assert status.state == "failed" and "gpt.pth is truncated" in status.error
    assert "python -m index_tts doctor --verify" in status.help  # the command that finds the damaged file
    with pytest.raises(NotReady, match="failed to load.*gpt.pth is truncated") as info:
        synth.synthesize(SynthesisRequest(text="hi", voice=voice()))
    assert info.value.state == "failed"


def test_load_delay_holds_loading_state(tmp_path):
    synth = Synthesizer(lambda progress: FakeEngine(), data_dir=tmp_path, load_delay_s=1.0).start()
    assert synth.status().state == "loading"
    assert wait_for(lambda: "--load-delay" in synth.status().message)
    assert synth.status().state == "loading" and synth.status().progress < 0.5
    assert synth.wait_until_loaded(10) == "ready"


def test_validation_happens_in_the_service(tmp_path):
    synth = Synthesizer(lambda progress: FakeEngine(), data_dir=tmp_path).start()
    assert synth.wait_until_loaded(10) == "ready"
    with pytest.raises(ValidationError) as info:
        synth.synthesize(SynthesisRequest(text="   ", voice=voice()))
    assert info.value.field == "text"
    with pytest.raises(ValidationError) as info:
        synth.synthesize(SynthesisRequest(text="hi", voice=voice(), emotion=EmotionSpec(mode="audio")))
    assert info.value.field == "emotion.audio"
    assert list(synth.data.outputs.iterdir()) == []


def test_requests_are_serialized(tmp_path):
    engine = FakeEngine()
    synth = Synthesizer(lambda progress: engine, data_dir=tmp_path).start()
    assert synth.wait_until_loaded(10) == "ready"
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: synth.synthesize(SynthesisRequest(text=f"word {i}", voice=voice())), range(6)))
    assert engine.max_active == 1
    assert len({r.path for r in results}) == 6


def test_eight_parallel_requests_on_the_quick_voice(tmp_path):
    factory, reason = select_engine("quick", tmp_path / "no-model")
    synth = Synthesizer(factory, data_dir=tmp_path, selection_reason=reason).start()
    assert synth.wait_until_loaded(30) == "ready"
    status = synth.status()
    assert status.is_quick_voice and "python -m index_tts download" in status.help
    texts = [f"Request number {i} says hello." for i in range(8)]

    def one(i):
        emotion = EmotionSpec(mode="vector", vector=tuple(0.6 if k == i else 0.0 for k in range(8)))
        return synth.synthesize(SynthesisRequest(text=texts[i], voice=voice(), emotion=emotion))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    paths = {r.path for r in results}
    assert len(paths) == 8
    for r in results:
        audio, rate = sf.read(r.path, dtype="float32")
        assert rate == OUTPUT_SAMPLE_RATE
        assert 0.5 < len(audio) / rate < 10.0
        assert np.abs(audio).max() > 0.01  # speech, not silence
    assert sorted(p.name for p in synth.data.outputs.iterdir()) == sorted(p.name for p in paths)


def test_text_with_nothing_to_speak_is_a_text_error_and_writes_nothing(tmp_path):
    factory, reason = select_engine("quick", tmp_path / "no-model")
    synth = Synthesizer(factory, data_dir=tmp_path, selection_reason=reason).start()
    assert synth.wait_until_loaded(30) == "ready"
    with pytest.raises(ValidationError) as caught:
        synth.synthesize(SynthesisRequest(text="!!! ... ???", voice=voice()))
    assert caught.value.field == "text" and "nothing to speak" in str(caught.value)
    assert list(synth.data.outputs.iterdir()) == []


def test_engine_selection(tmp_path):
    from index_tts.engines import EngineUnavailable

    factory, reason = select_engine("auto", tmp_path / "empty-model-dir")
    assert factory.__module__ == "index_tts.engines.quick"
    assert reason.startswith("quick voice") and "python -m index_tts download" in reason
    with pytest.raises(EngineUnavailable, match="python -m index_tts download"):
        select_engine("indextts2", tmp_path / "empty-model-dir")
    with pytest.raises(ValueError, match="engine"):
        select_engine("fastest", tmp_path)


@pytest.fixture(scope="module")
def quick_synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    factory, reason = select_engine("quick", root / "no-model")
    synth = Synthesizer(factory, data_dir=root, selection_reason=reason).start()
    assert synth.wait_until_loaded(30) == "ready"
    return synth


def test_streamed_chunks_are_the_written_file(quick_synth):
    chunks = []
    text = ("The first sentence is here, and it goes on for a while longer than usual. "
            "And then a second one follows it, which is also rather long and winding.")
    request = SynthesisRequest(text=text, voice=voice(), generation=GenerationParams(seed=3, max_text_tokens_per_segment=20))
    result = quick_synth.synthesize(request, on_audio=chunks.append)
    written, rate = sf.read(result.path, dtype="int16")
    assert len(result.segments) == len(chunks) >= 2
    assert all(c.dtype == np.int16 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), written)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "opus", "pcm"])
def test_every_output_format_decodes_to_speech(quick_synth, fmt):
    request = SynthesisRequest(text="Formats are fun.", voice=voice(), output_format=fmt.upper() if fmt == "mp3" else fmt,
                               generation=GenerationParams(seed=1))
    result = quick_synth.synthesize(request)
    assert result.format == fmt and result.path.suffix == f".{fmt}"
    if fmt == "pcm":
        audio, rate = np.frombuffer(result.path.read_bytes(), "<i2").astype(np.float32) / 32768, OUTPUT_SAMPLE_RATE
    else:
        audio, rate = sf.read(result.path, dtype="float32")
    assert rate == (24000 if fmt == "opus" else OUTPUT_SAMPLE_RATE)
    # Lossy codecs pad a little; the length must still be the utterance's.
    assert abs(len(audio) / rate - result.duration_s) < 0.1
    assert np.abs(audio).max() > 0.01


def test_voice_library_round_trip_and_validation(quick_synth, tmp_path):
    synth = Synthesizer(quick_synth._factory, data_dir=tmp_path)
    saved, replaced = synth.save_voice("Narrator one", voice(), tags="warm, low", note="for chapter 1",
                                       default_emotion={"preset": "calm"})
    assert not replaced and saved.tags == ("warm", "low")
    audio, rate = sf.read(synth.voice_path("Narrator one"), dtype="float32")
    assert rate == SR and abs(len(audio) / rate - 1.5) < 1e-3
    with pytest.raises(FileExistsError):
        synth.save_voice("Narrator one", voice())
    assert synth.save_voice("Narrator one", voice(2.0), overwrite=True)[1] is True
    with pytest.raises(ValidationError) as e:
        synth.save_voice("quiet", (SR, np.zeros(SR, np.float32)))
    assert e.value.field == "voice" and not synth.voices.exists("quiet")
    with pytest.raises(ValidationError) as e:
        synth.save_voice("../../etc", voice(), note="x" * 5000)
    assert e.value.field == "note"
    with pytest.raises(ValidationError) as e:
        synth.voice_path("nobody")
    assert e.value.field == "voice"
