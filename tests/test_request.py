"""SynthesisRequest.validate: the one place requests are checked; every bad field is named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import GenerationParams
from index_tts.service import Limits, SynthesisRequest, ValidationError, audio_key

SR = 16000


def tone(seconds: float = 1.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.fixture
def voice_file(tmp_path):
    path = tmp_path / "voice.wav"
    sf.write(path, tone(), SR)
    return str(path)


def expect_field(request: SynthesisRequest, field: str, limits: Limits = Limits()) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        request.validate(limits)
    assert info.value.field == field, str(info.value)
    assert field in str(info.value)
    return info.value


def test_valid_request_decodes_voice_and_keys_it_by_content(voice_file, tmp_path):
    engine_request = SynthesisRequest(text="  Hello there.  ", voice=voice_file).validate()
    assert engine_request.text == "Hello there."
    assert engine_request.voice.dtype == np.float32 and engine_request.voice.ndim == 1
    assert engine_request.voice_sr == SR
    # The same samples under another name (and as an in-memory tuple) give the same key.
    other = tmp_path / "renamed.wav"
    sf.write(other, tone(), SR)
    assert SynthesisRequest(text="x", voice=str(other)).validate().voice_key == engine_request.voice_key
    # A different voice gives a different key.
    assert SynthesisRequest(text="x", voice=(SR, tone(amp=0.2))).validate().voice_key != engine_request.voice_key


def test_int16_stereo_tuple_becomes_float_mono():
    stereo = np.stack([tone(), tone()], axis=1)
    pcm = (stereo * 32767).astype(np.int16)
    req = SynthesisRequest(text="hi", voice=(SR, pcm)).validate()
    assert req.voice.shape == (SR,)
    assert np.allclose(req.voice, tone(), atol=1e-3)
    assert req.voice_key == audio_key(req.voice, SR)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(voice_file, text):
    expect_field(SynthesisRequest(text=text, voice=voice_file), "text")


def test_text_type_and_length(voice_file):
    expect_field(SynthesisRequest(text=123, voice=voice_file), "text")
    err = expect_field(SynthesisRequest(text="a" * 51, voice=voice_file), "text", Limits(max_text_chars=50))
    assert "50" in str(err)
    SynthesisRequest(text="a" * 50, voice=voice_file).validate(Limits(max_text_chars=50))


def test_default_text_limit_is_5000(voice_file):
    SynthesisRequest(text="a" * 5000, voice=voice_file).validate()
    expect_field(SynthesisRequest(text="a" * 5001, voice=voice_file), "text")


def test_voice_missing_unreadable_corrupt(tmp_path):
    expect_field(SynthesisRequest(text="hi", voice=None), "voice")
    expect_field(SynthesisRequest(text="hi", voice=str(tmp_path / "nope.wav")), "voice")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00not really a wav file at all" * 10)
    expect_field(SynthesisRequest(text="hi", voice=str(garbage)), "voice")
    expect_field(SynthesisRequest(text="hi", voice=12345), "voice")


def test_voice_silent_short_long_nan(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    assert "silent" in str(expect_field(SynthesisRequest(text="hi", voice=str(silent)), "voice"))
    expect_field(SynthesisRequest(text="hi", voice=(SR, tone(0.1))), "voice")
    long_voice = (SR, tone(3.0))
    assert "too long" in str(expect_field(SynthesisRequest(text="hi", voice=long_voice), "voice", Limits(max_voice_seconds=2.0)))
    bad = tone()
    bad[100] = np.nan
    expect_field(SynthesisRequest(text="hi", voice=(SR, bad)), "voice")
    bad[100] = np.inf
    expect_field(SynthesisRequest(text="hi", voice=(SR, bad)), "voice")
    expect_field(SynthesisRequest(text="hi", voice=(0, tone())), "voice")
    expect_field(SynthesisRequest(text="hi", voice=(SR, np.array(["a", "b"]))), "voice")


def test_voice_over_sixty_seconds_rejected_by_default():
    expect_field(SynthesisRequest(text="hi", voice=(8000, tone(61.0, sr=8000))), "voice")


@pytest.mark.parametrize(
    "emotion, field",
    [
        (EmotionSpec(mode="shouting"), "emotion.mode"),
        (EmotionSpec(weight=math.nan), "emotion.weight"),
        (EmotionSpec(weight=1.5), "emotion.weight"),
        (EmotionSpec(weight=True), "emotion.weight"),
        (EmotionSpec(mode="vector", vector=(0.1,) * 7), "emotion.vector"),
        (EmotionSpec(mode="vector", vector=(0.1,) * 7 + (math.inf,)), "emotion.vector.calm"),
        (EmotionSpec(mode="vector", vector="happy"), "emotion.vector"),
        (EmotionSpec(mode="audio"), "emotion.audio"),
        (EmotionSpec(mode="text", text=5), "emotion.text"),
        (EmotionSpec(use_random="yes"), "emotion.use_random"),
    ],
)
def test_bad_emotion_fields(voice_file, emotion, field):
    expect_field(SynthesisRequest(text="hi", voice=voice_file, emotion=emotion), field)


def test_emotion_wrong_type(voice_file):
    expect_field(SynthesisRequest(text="hi", voice=voice_file, emotion={"mode": "vector"}), "emotion")


def test_emotion_audio_is_decoded_and_validated(voice_file, tmp_path):
    req = SynthesisRequest(text="hi", voice=voice_file, emotion=EmotionSpec(mode="audio"), emotion_audio=(22050, tone(sr=22050)))
    engine_request = req.validate()
    assert engine_request.emotion.audio_sr == 22050
    assert engine_request.emotion.audio.shape == (22050,)
    silent = (SR, np.zeros(SR, dtype=np.float32))
    expect_field(SynthesisRequest(text="hi", voice=voice_file, emotion=EmotionSpec(mode="audio"), emotion_audio=silent), "emotion.audio")


@pytest.mark.parametrize(
    "generation, field",
    [
        (GenerationParams(temperature=math.nan), "generation.temperature"),
        (GenerationParams(top_p=1.5), "generation.top_p"),
        (GenerationParams(top_k=2.5), "generation.top_k"),
        (GenerationParams(num_beams=0), "generation.num_beams"),
        (GenerationParams(max_mel_tokens=10), "generation.max_mel_tokens"),
        (GenerationParams(max_text_tokens_per_segment=1000), "generation.max_text_tokens_per_segment"),
        (GenerationParams(interval_silence_ms=-1), "generation.interval_silence_ms"),
        (GenerationParams(repetition_penalty="high"), "generation.repetition_penalty"),
        (GenerationParams(do_sample="yes"), "generation.do_sample"),
        (GenerationParams(seed=-3), "generation.seed"),
    ],
)
def test_bad_generation_fields(voice_file, generation, field):
    expect_field(SynthesisRequest(text="hi", voice=voice_file, generation=generation), field)


def test_generation_wrong_type_and_unknown_format(voice_file):
    expect_field(SynthesisRequest(text="hi", voice=voice_file, generation={"top_k": 3}), "generation")
    expect_field(SynthesisRequest(text="hi", voice=voice_file, output_format="aiff"), "output_format")
    expect_field(SynthesisRequest(text="hi", voice=voice_file, output_format=3), "output_format")


def test_validation_error_is_a_value_error(voice_file):
    with pytest.raises(ValueError):
        SynthesisRequest(text="", voice=voice_file).validate()
