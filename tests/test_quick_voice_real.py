"""Quick voice on real and degraded references (tests/real_voices.py).

Pitch is measured here with plain WORLD harvest (50-800 Hz, every voiced frame), not with the
profile's own gated method, so the engine is checked against an independent measure.
"""

from __future__ import annotations

import numpy as np
import pytest
import pyworld

from index_tts.emotion import EMOTIONS, EmotionSpec
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.engines.quick import QuickVoiceEngine, rule_from_reference
from index_tts.quickvoice import espeak, prosody, voice
from index_tts.engines.base import UnusableReference
from index_tts.quickvoice.voice import VoiceAnalysisError
from tests import real_voices as rv

SR = rv.SR
TEXT = "The weather today is bright and clear."
CASES = [(name, case) for name in ("alsa", "espeak") for case in rv.DEGRADATIONS]


def harvest_median(x: np.ndarray, sr: int = SR) -> float:
    x = np.asarray(x)
    x = x / 32768 if x.dtype == np.int16 else x.astype(np.float64)
    f0, _ = pyworld.harvest(x, sr, f0_floor=50, f0_ceil=800, frame_period=5)
    return float(np.median(f0[f0 > 0]))


@pytest.fixture(scope="module")
def clean_voices() -> dict[str, np.ndarray]:
    if not (rv.ALSA_DIR / "Front_Center.wav").exists():
        pytest.fail(f"{rv.ALSA_DIR} is missing: install Debian's alsa-utils (run_tests.sh does)")
    return {"alsa": rv.alsa_voice(), "espeak": rv.espeak_voice()}


@pytest.fixture(scope="module")
def references(clean_voices) -> dict[tuple[str, str], tuple[np.ndarray, int]]:
    return {(name, case): rv.degrade(clean_voices[name], case) for name, case in CASES}


@pytest.fixture(scope="module")
def clean_f0(clean_voices) -> dict[str, float]:
    return {name: harvest_median(x) for name, x in clean_voices.items()}


@pytest.fixture(scope="module")
def engine() -> QuickVoiceEngine:
    return QuickVoiceEngine.load()


@pytest.fixture(scope="module")
def profiles(engine, references):
    """The engine's own profile of a case, measured once (a harvest over the whole reference)
    and kept in its per-voice cache under the key `speak` uses."""
    def get(name: str, case: str) -> voice.VoiceProfile:
        return engine._profile(*references[(name, case)], key=f"{name}-{case}")

    return get


def speak(engine, ref, sr, key, emotion=None):
    request = EngineRequest(text=TEXT, voice=ref, voice_sr=sr, voice_key=key,
                            emotion=emotion or EmotionSpec(), generation=GenerationParams(seed=1))
    return engine.synthesize(request).audio


def test_the_two_voices_are_a_high_and_a_low_one(clean_f0):
    assert 160 < clean_f0["alsa"] < 220
    assert 85 < clean_f0["espeak"] < 120


@pytest.mark.parametrize("name,case", CASES)
def test_output_pitch_follows_the_clean_reference(engine, references, profiles, clean_f0, name, case):
    wav, sr = references[(name, case)]
    out = speak(engine, wav, sr, key=f"{name}-{case}")
    assert profiles(name, case).f0_median_hz == pytest.approx(clean_f0[name], rel=0.15)
    assert harvest_median(out) == pytest.approx(clean_f0[name], rel=0.15)


@pytest.mark.parametrize("name,case", [c for c in CASES if c[1] != "clean"])
def test_emotion_from_audio_measures_ignore_the_channel(profiles, name, case):
    """A degraded copy used as the emotion reference for its own clean voice reads as (nearly)
    neutral: the channel must not pass for an emotion stronger than the table's 'slightly'."""
    rule = rule_from_reference(profiles(name, case), profiles(name, "clean"))
    assert abs(rule.pitch_st) < 1.5
    assert 0.75 < rule.range_scale < 1.33
    assert 0.75 < rule.rate < 1.33


@pytest.mark.parametrize("name,case", CASES)
def test_timbre_warp_is_stable(profiles, name, case):
    """alpha > 1 for the woman (shorter vocal tract than espeak's man), about 1 for espeak's own
    voice, and a channel moves it by less than 0.05."""
    text = espeak.speak(TEXT, voice=espeak.ENGLISH)
    source = voice.profile_from_features([prosody.analyse(text, SR)], [text])
    alpha = voice.estimate_warp(source.envelope, profiles(name, case).envelope)
    clean = voice.estimate_warp(source.envelope, profiles(name, "clean").envelope)
    assert abs(alpha - clean) < 0.05
    assert (alpha > 1.03) if name == "alsa" else (abs(alpha - 1.0) < 0.05)


@pytest.fixture(scope="module")
def by_emotion(engine, references) -> dict[str, np.ndarray]:
    wav, sr = references[("alsa", "clean")]
    return {
        e: speak(engine, wav, sr, "alsa-clean", EmotionSpec(mode="vector", weight=1.0,
                                                           vector=tuple(float(x == e) for x in EMOTIONS)))
        for e in ("calm", "happy", "angry", "surprised", "sad", "melancholic")
    }


@pytest.mark.parametrize("name", ["happy", "angry", "surprised"])
def test_aroused_emotions_raise_the_real_voice(by_emotion, name):
    assert harvest_median(by_emotion[name]) > 1.05 * harvest_median(by_emotion["calm"])


@pytest.mark.parametrize("name", ["sad", "melancholic"])
def test_low_emotions_lower_the_real_voice(by_emotion, name):
    assert harvest_median(by_emotion[name]) < 0.97 * harvest_median(by_emotion["calm"])


def test_sad_real_voice_is_slower_than_calm(by_emotion):
    assert len(by_emotion["sad"]) > 1.05 * len(by_emotion["calm"])


@pytest.mark.parametrize("what", ["music", "alsa-noise", "pink-noise"])
def test_unusable_reference_is_a_clear_error(engine, clean_voices, what):
    if what == "music":
        ref = rv.music_only()
    elif what == "alsa-noise":
        ref = rv.read(rv.ALSA_NOISE)
    else:
        ref = rv.pink_noise(3 * SR, np.random.default_rng(2))
        ref = (0.1 * ref / np.abs(ref).max()).astype(np.float32)
    with pytest.raises(UnusableReference, match="voiced") as caught:
        speak(engine, ref, SR, key=what)
    assert caught.value.field == "voice" and isinstance(caught.value.__cause__, VoiceAnalysisError)
