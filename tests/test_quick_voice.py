"""Quick voice engine: measured on generated speech (F0 with WORLD dio + stonemask)."""

from __future__ import annotations

import numpy as np
import pytest
import pyworld

from index_tts.emotion import EMOTIONS, EmotionSpec  # noqa: E402
from index_tts.engines.base import EngineRequest, GenerationParams  # noqa: E402
from index_tts.engines.quick import QuickVoiceEngine, count_tokens  # noqa: E402
from index_tts.quickvoice import prosody  # noqa: E402
from index_tts.text.emotion_lexicon import text_to_emotion  # noqa: E402
from index_tts.engines.base import UnusableReference  # noqa: E402
from index_tts.quickvoice.voice import VoiceAnalysisError  # noqa: E402

SR = 22050
TEXT_EN = "The weather today is bright and clear. We will walk along the river after lunch."
TEXT_ZH = "今天天气很好，阳光明媚。我们下午去河边散步吧。"
# two sentences of 12 words each: two segments at the smallest allowed limit (20)
TEXT_TWO = "The old man walked slowly down the long road to the quiet town. " \
           "He stopped at the small bakery and bought some fresh bread for dinner."


def harmonic_voice(f0: float, seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    """A buzzy vowel-like reference: 24 harmonics of a slowly wobbling f0, amplitude-modulated
    at 4 Hz like syllables."""
    t = np.arange(int(seconds * sr)) / sr
    inst = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(inst) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * x * envelope).astype(np.float32)


def median_f0(pcm: np.ndarray) -> float:
    x = pcm.astype(np.float64) / 32768
    f0, t = pyworld.dio(x, SR, f0_floor=50, f0_ceil=800, frame_period=5)
    f0 = pyworld.stonemask(x, f0, t, SR)
    return float(np.median(f0[f0 > 0]))


def one_hot(name: str) -> tuple[float, ...]:
    return tuple(1.0 if e == name else 0.0 for e in EMOTIONS)


@pytest.fixture(scope="module")
def engine() -> QuickVoiceEngine:
    return QuickVoiceEngine.load()


@pytest.fixture(scope="module")
def ref150() -> np.ndarray:
    return harmonic_voice(150.0)


def speak(engine, ref, text=TEXT_EN, emotion=None, seed=1, key="h150", **gen):
    request = EngineRequest(
        text=text, voice=ref, voice_sr=16000, voice_key=key,
        emotion=emotion or EmotionSpec(), generation=GenerationParams(seed=seed, **gen),
    )
    return engine.synthesize(request)


@pytest.fixture(scope="module")
def by_emotion(engine, ref150) -> dict[str, np.ndarray]:
    return {
        name: speak(engine, ref150, emotion=EmotionSpec(mode="vector", vector=one_hot(name), weight=1.0)).audio
        for name in ("calm", "happy", "angry", "surprised", "sad", "melancholic")
    }


@pytest.mark.parametrize("name", ["happy", "angry", "surprised"])
def test_aroused_emotions_raise_pitch(by_emotion, name):
    assert median_f0(by_emotion[name]) > 1.05 * median_f0(by_emotion["calm"])


@pytest.mark.parametrize("name", ["sad", "melancholic"])
def test_low_emotions_lower_pitch(by_emotion, name):
    assert median_f0(by_emotion[name]) < 0.97 * median_f0(by_emotion["calm"])


def test_sad_is_slower_than_calm(by_emotion):
    assert len(by_emotion["sad"]) > 1.05 * len(by_emotion["calm"])


@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_output_pitch_follows_reference_voice(engine, f0):
    out = speak(engine, harmonic_voice(f0), key=f"h{f0}")
    assert abs(median_f0(out.audio) - f0) < 0.15 * f0


def test_same_seed_same_audio_and_random_blend_depends_on_seed(engine, ref150):
    emo = EmotionSpec(mode="vector", vector=one_hot("happy"), weight=0.8, use_random=True)
    a = speak(engine, ref150, emotion=emo, seed=7).audio
    b = speak(engine, ref150, emotion=emo, seed=7).audio
    c = speak(engine, ref150, emotion=emo, seed=8).audio
    assert a.dtype == np.int16 and np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("text,min_s,max_s", [(TEXT_EN, 2.5, 9.0), (TEXT_ZH, 2.0, 9.0)])
def test_both_languages_speak(engine, ref150, text, min_s, max_s):
    out = speak(engine, ref150, text=text)
    seconds = len(out.audio) / out.sample_rate
    assert out.sample_rate == SR
    assert min_s < seconds < max_s
    rms = np.sqrt(np.mean((out.audio / 32768.0) ** 2))
    assert rms > 0.01
    # speech is voiced for a good part of its duration
    x = out.audio.astype(np.float64) / 32768
    f0, _ = pyworld.dio(x, SR, frame_period=5)
    assert np.mean(f0 > 0) > 0.2


def test_blend_lands_between_its_parts(engine, ref150, by_emotion):
    mixed = tuple(0.5 if e in ("happy", "sad") else 0.0 for e in EMOTIONS)
    audio = speak(engine, ref150, emotion=EmotionSpec(mode="vector", vector=mixed, weight=1.0)).audio
    lo, hi = median_f0(by_emotion["sad"]), median_f0(by_emotion["happy"])
    assert lo < median_f0(audio) < hi
    assert len(by_emotion["happy"]) < len(audio) < len(by_emotion["sad"])


def test_blend_rule_is_weighted_mix():
    half = prosody.blend([0.5 if e in ("happy", "sad") else 0.0 for e in EMOTIONS])
    happy, sad = prosody.RULES["happy"], prosody.RULES["sad"]
    assert half.pitch_st == pytest.approx(0.5 * (happy.pitch_st + sad.pitch_st))
    assert half.rate == pytest.approx(np.sqrt(happy.rate * sad.rate))
    assert prosody.blend(one_hot("angry"), alpha=0.0) == prosody.NEUTRAL
    # weights above a sum of 1 are normalised, not exaggerated
    assert prosody.blend([1.0] * 8).pitch_st == pytest.approx(np.mean([r.pitch_st for r in prosody.RULES.values()]))


def test_weight_scales_the_effect(engine, ref150, by_emotion):
    weak = speak(engine, ref150, emotion=EmotionSpec(mode="vector", vector=one_hot("happy"), weight=0.3)).audio
    assert median_f0(by_emotion["calm"]) < median_f0(weak) < median_f0(by_emotion["happy"])


def test_text_mode_uses_lexicon(engine, ref150):
    calm = speak(engine, ref150, emotion=EmotionSpec(mode="text", text="a quiet evening", weight=1.0)).audio
    angry = speak(engine, ref150, emotion=EmotionSpec(mode="text", text="I am furious!", weight=1.0)).audio
    assert median_f0(angry) > 1.1 * median_f0(calm)


def test_audio_mode_follows_emotion_reference_pitch(engine, ref150):
    high = speak(engine, ref150, emotion=EmotionSpec(mode="audio", audio=harmonic_voice(200.0), audio_sr=16000, weight=1.0)).audio
    neutral = speak(engine, ref150).audio
    assert median_f0(high) > 1.15 * median_f0(neutral)


def test_segments_and_silence(engine, ref150):
    segs = engine.segments("One two three. Four five six! 七八九。Ten eleven", max_tokens=6)
    assert [s.n_tokens for s in segs] == [6, 5]
    assert all(s.n_tokens <= 6 for s in segs)
    long = engine.segments(" ".join(["word"] * 45), max_tokens=20)
    assert [s.n_tokens for s in long] == [20, 20, 5]
    out = speak(engine, ref150, text=TEXT_TWO, max_text_tokens_per_segment=30, interval_silence_ms=500)
    out2 = speak(engine, ref150, text=TEXT_TWO, max_text_tokens_per_segment=20, interval_silence_ms=500)
    assert len(out.segments) == 1 and len(out2.segments) == 2
    (_, _, end1), (_, start2, _) = out2.segments
    assert start2 - end1 == pytest.approx(0.5, abs=1e-3)
    gap = out2.audio[int(end1 * SR) + 10: int(start2 * SR) - 10]
    assert np.abs(gap).max() == 0


def test_count_tokens():
    assert count_tokens("Hello, world! 你好") == 4
    assert count_tokens("it's 2024") == 2


def test_silent_reference_is_a_clear_error(engine):
    # The analysis' VoiceAnalysisError reaches the service as the engines' UnusableReference("voice").
    with pytest.raises(UnusableReference, match="silent|voiced") as caught:
        speak(engine, np.zeros(16000, np.float32), key="silence")
    assert caught.value.field == "voice" and isinstance(caught.value.__cause__, VoiceAnalysisError)
    noise = (0.05 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    with pytest.raises(UnusableReference, match="voiced") as caught:
        speak(engine, noise, key="noise")
    assert isinstance(caught.value.__cause__, VoiceAnalysisError)


def test_progress_stages(engine, ref150):
    stages = []
    request = EngineRequest(TEXT_TWO, ref150, 16000, "h150", generation=GenerationParams(seed=3, max_text_tokens_per_segment=20))
    engine.synthesize(request, lambda f, s: stages.append((f, s)))
    names = [s for _, s in stages]
    assert names[0] == "segmenting"
    assert "speaking 1/2" in names and "speaking 2/2" in names
    assert "applying emotion" in names and "adapting voice" in names
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.parametrize(
    "text,expected",
    [
        ("I am so happy today!", "happy"),
        ("I am not happy at all.", "sad"),
        ("我今天很开心", "happy"),
        ("我不开心", "sad"),
        ("我好害怕", "afraid"),
        ("Wow, what a surprise!", "surprised"),
        ("太恶心了", "disgusted"),
        ("I am not afraid.", "calm"),
        ("The train leaves at nine.", "calm"),
    ],
)
def test_lexicon(text, expected):
    v = text_to_emotion(text)
    assert len(v) == 8 and sum(v) == pytest.approx(1.0)
    assert EMOTIONS[int(np.argmax(v))] == expected


@pytest.mark.parametrize("text", ["shh", "ok", "你"])
def test_tiny_texts_still_speak(engine, ref150, text):
    out = speak(engine, ref150, text=text)
    assert 0.1 < len(out.audio) / SR < 2.0 and np.abs(out.audio).max() > 1000


def test_text_without_tokens_is_an_error(engine, ref150):
    with pytest.raises(ValueError, match="nothing to speak"):
        speak(engine, ref150, text="... !!")
