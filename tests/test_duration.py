"""Duration control: `duration_factor` and a target `duration`, on the quick voice and the tiny
IndexTTS2 model (random weights: lengths and codes are checked, never speech)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from index_tts.engines import select_engine
from index_tts.engines.quick import QuickVoiceEngine
from index_tts.service import OUTPUT_SAMPLE_RATE, GenerationParams, Synthesizer, SynthesisRequest, ValidationError
from index_tts.engines.timing import tolerance_s
from tests.test_quick_voice import TEXT_TWO, harmonic_voice

TEXT = TEXT_TWO  # two segments at 20 tokens each
TAGGED = "[happy]What a day! [pause 300ms][sad]But it ends so soon."
VOICE = (16000, harmonic_voice(150.0))
QUICK = GenerationParams(seed=7, max_text_tokens_per_segment=20)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Synthesizer:
    synth = Synthesizer(QuickVoiceEngine.load, data_dir=tmp_path_factory.mktemp("quick-data")).start()
    assert synth.wait_until_loaded(30) == "ready"
    return synth


def seconds(audio: np.ndarray) -> float:
    return len(audio) / OUTPUT_SAMPLE_RATE


# ---------------------------------------------------------------------------------------------
# quick voice


def test_quick_voice_hits_several_targets_within_tolerance(quick):
    natural, _ = quick.render(SynthesisRequest(text=TEXT, voice=VOICE, generation=QUICK))
    for target in (0.6 * seconds(natural.audio), 5.0, seconds(natural.audio) + 0.37, 12.0):
        rendered, _ = quick.render(SynthesisRequest(text=TEXT, voice=VOICE, generation=QUICK, duration=target))
        assert abs(seconds(rendered.audio) - target) <= tolerance_s(target), (target, seconds(rendered.audio))
        assert 0.5 <= rendered.duration_factor <= 2.0
        assert rendered.duration_factor == pytest.approx(target / seconds(natural.audio), rel=0.08)
        # the segment silence is fixed: only the speech stretched
        (_, _, end0), (_, start1, _) = [(s.text, s.start_s, s.end_s) for s in rendered.timeline][:2]
        assert start1 - end0 == pytest.approx(QUICK.interval_silence_ms / 1000, abs=2e-3)


def test_quick_voice_duration_counts_the_tag_pauses(quick):
    natural, _ = quick.render(SynthesisRequest(text=TAGGED, voice=VOICE, generation=QUICK))
    target = 1.3 * seconds(natural.audio)
    rendered, _ = quick.render(SynthesisRequest(text=TAGGED, voice=VOICE, generation=QUICK, duration=target))
    assert abs(seconds(rendered.audio) - target) <= tolerance_s(target)
    assert [s.emotion.split()[0] for s in rendered.timeline] == ["happy", "sad"]
    # the 300 ms pause tag is kept as it is, between the parts
    gap = rendered.timeline[1].start_s - rendered.timeline[0].end_s
    assert gap == pytest.approx(0.3, abs=2e-3)


def test_quick_voice_duration_factor_scales_the_speech(quick):
    lengths = {}
    for factor in (0.5, 1.0, 1.6, 2.0):
        rendered, _ = quick.render(SynthesisRequest(text="Bright and clear.", voice=VOICE,
                                                    generation=replace(QUICK, duration_factor=factor)))
        lengths[factor] = seconds(rendered.audio)
    for factor, length in lengths.items():
        assert length == pytest.approx(factor * lengths[1.0], abs=0.012)


def test_an_out_of_reach_target_names_duration_and_the_range(quick):
    for target in (0.3, 30.0):
        with pytest.raises(ValidationError) as caught:
            quick.render(SynthesisRequest(text=TEXT, voice=VOICE, generation=QUICK, duration=target))
        assert caught.value.field == "duration"
        low, high = (float(x) for x in str(caught.value).split("can take ")[1].split(" s")[0].split("-"))
        assert 0 < low < high and not low <= target <= high
    with pytest.raises(ValidationError) as caught:
        quick.render(SynthesisRequest(text=TEXT, voice=VOICE, duration=3.0, speed=1.5))
    assert caught.value.field == "duration"
    with pytest.raises(ValidationError) as caught:
        quick.render(SynthesisRequest(text=TEXT, voice=VOICE, duration=-1.0))
    assert caught.value.field == "duration"


def test_speed_on_a_timed_engine_renders_slower_speech_not_a_stretch(quick):
    result = quick.synthesize(SynthesisRequest(text="Bright and clear.", voice=VOICE, generation=QUICK, speed=0.8))
    natural = quick.synthesize(SynthesisRequest(text="Bright and clear.", voice=VOICE, generation=QUICK))
    assert result.duration_s == pytest.approx(natural.duration_s / 0.8, abs=0.012)
    slow, _ = quick.render(SynthesisRequest(text="Bright and clear.", voice=VOICE,
                                            generation=replace(QUICK, duration_factor=1.25)))
    import soundfile as sf
    assert np.array_equal(sf.read(result.path, dtype="int16")[0], slow.audio)  # the engine's own tempo
    assert quick.get_history(result.history_id)["request"]["speed"] == 0.8
    assert quick.get_history(result.history_id)["request"]["generation"]["duration_factor"] == 1.0


# ---------------------------------------------------------------------------------------------
# tiny IndexTTS2


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tmp_path_factory) -> Synthesizer:
    factory, _ = select_engine("indextts2", tiny_model_dir)
    synth = Synthesizer(factory, data_dir=tmp_path_factory.mktemp("tiny-data")).start()
    assert synth.wait_until_loaded(900) == "ready", synth.status().error
    return synth


TINY = GenerationParams(max_mel_tokens=50, seed=1234, max_text_tokens_per_segment=20, interval_silence_ms=150)
TINY_TEXT = "It was a cold day. The clocks were striking. He slipped through the doors."


def test_indextts2_codes_do_not_depend_on_the_factor(tiny):
    engine = tiny._ready_engine()
    request = SynthesisRequest(text="It was a cold day.", voice=VOICE, generation=TINY).validate()
    prompt = engine.voice_prompt(request.voice, request.voice_sr, request.voice_key)
    emovec = engine.emotion_vector(prompt, request.emotion)
    ids = engine._prepare_text(request, TINY)[1]
    traced = {}
    for factor in (0.6, 1.0, 1.7):
        trace = {}
        wav, _ = engine.synthesize_tokens(prompt, emovec, ids, TINY, torch.Generator().manual_seed(5),
                                          trace=trace.__setitem__, duration_factor=factor)
        n = trace["seg0_codes"].size(1)
        assert int(trace["seg0_target_len"][0]) == int(np.float32(n) * np.float32(1.72) * np.float32(factor))
        assert wav.numel() == 256 * int(trace["seg0_target_len"][0])  # the vocoder's hop per mel frame
        traced[factor] = trace["seg0_codes"]
    assert torch.equal(traced[0.6], traced[1.0]) and torch.equal(traced[1.7], traced[1.0])

    # planned: all segments' content is drawn before any audio, so no factor touches it
    long_request = replace(request, text=TINY_TEXT)
    plans = [engine.plan(long_request) for _ in range(2)]
    assert len(plans[0].contents) >= 2
    for a, b in zip(plans[0].contents, plans[1].contents):
        assert torch.equal(a, b)
    for factor in (0.55, 1.0, 1.9):
        assert len(engine.finish(plans[0], factor).audio) == plans[0].samples(factor)


def test_indextts2_hits_several_targets_within_tolerance(tiny):
    # Targets from the planned content's own lengths (content is drawn before any audio, so with
    # the same seed a text of several segments may get other codes than without a target).
    request = SynthesisRequest(text=TINY_TEXT, voice=VOICE, generation=TINY)
    plan = tiny._ready_engine().plan(request.validate())
    base = plan.samples(1.0) / OUTPUT_SAMPLE_RATE
    for factor in (0.6, 1.3, 1.9):
        target = plan.samples(factor) / OUTPUT_SAMPLE_RATE + 0.004
        rendered, _ = tiny.render(replace(request, duration=target))
        assert abs(seconds(rendered.audio) - target) <= tolerance_s(target), (target, seconds(rendered.audio))
        assert rendered.duration_factor == pytest.approx(factor, abs=0.15)
        gaps = [b.start_s - a.end_s for a, b in zip(rendered.timeline, rendered.timeline[1:])]
        assert gaps and all(g == pytest.approx(0.15, abs=1e-3) for g in gaps)
    with pytest.raises(ValidationError) as caught:
        tiny.render(SynthesisRequest(text=TINY_TEXT, voice=VOICE, generation=TINY, duration=3 * base))
    assert caught.value.field == "duration" and "duration factor 0.5-2" in str(caught.value)


def test_indextts2_speed_uses_the_length_regulator(tiny):
    natural, _ = tiny.render(SynthesisRequest(text="It was a cold day.", voice=VOICE, generation=TINY))
    fast = tiny.synthesize(SynthesisRequest(text="It was a cold day.", voice=VOICE, generation=TINY, speed=1.25))
    samples = round(fast.duration_s * OUTPUT_SAMPLE_RATE)
    assert samples % 256 == 0  # whole mel frames: rendered by the DiT, not time-stretched
    assert abs(samples - 0.8 * len(natural.audio)) <= 2 * 256
