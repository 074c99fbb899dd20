"""IndexTTS2 in the studio, end to end on a tiny random model (`tiny_model_dir`, tests/conftest.py).

Engine selection, loading and synthesis through the real Synthesizer, the four emotion modes,
seeds, per-voice caches and concurrent requests. The weights are random, so the audio is checked
for form (format, length, timings, determinism), never for speech.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from index_tts.emotion import EMOTIONS, EmotionSpec
from index_tts.engines import select_engine
from index_tts.model_store.layout import ModelFiles
from index_tts.engines.base import GenerationParams
from index_tts.engines.indextts2 import QWEN_DIR_DEFAULT, IndexTTS2Engine
from index_tts.service import OUTPUT_SAMPLE_RATE, Synthesizer, SynthesisRequest

SR = 16000
TEXT = "Hello there, this is a short test."
# Random weights seldom emit the stop code: cap the codes so each request stays short.
FAST = GenerationParams(max_mel_tokens=50, seed=1234)
LOAD_STAGES = ["loading GPT", "loading s2mel", "loading w2v-BERT", "loading semantic codec", "loading CAMPPlus",
               "loading BigVGAN", "loading emotion matrices", "loading text front end", "ready"]


def buzz(f0: float, seconds: float = 2.0) -> np.ndarray:
    """A vowel-like harmonic buzz with vibrato at SR: a stand-in voice."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 + 0.1 * f0 * np.sin(2 * np.pi * 4 * t)) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def read_wav(path: Path) -> np.ndarray:
    info = sf.info(path)
    assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, OUTPUT_SAMPLE_RATE)
    audio, _ = sf.read(path, dtype="int16")
    return audio


@pytest.fixture(scope="module")
def studio(tiny_model_dir, tmp_path_factory):
    """The real service running IndexTTS2 from the tiny model directory."""
    factory, reason = select_engine("auto", tiny_model_dir)
    stages, engines = [], []

    def load(progress):  # the service's factory, spied on: load progress and the engine it built
        engine = factory(lambda f, stage: (stages.append((f, stage)), progress(f, stage)))
        engines.append(engine)
        return engine

    started = time.perf_counter()
    synth = Synthesizer(load, data_dir=tmp_path_factory.mktemp("studio-data"), selection_reason=reason).start()
    assert synth.wait_until_loaded(900) == "ready", synth.status().error
    print(f"\n[measure] tiny IndexTTS2 loaded through the service in {time.perf_counter() - started:.1f} s")
    return SimpleNamespace(synth=synth, engine=engines[0], stages=stages, voice=(SR, buzz(140)))


# ---------------------------------------------------------------------------------------------
# selection


def test_auto_picks_indextts2_when_the_model_dir_is_complete(tiny_model_dir):
    for kind in ("auto", "indextts2"):
        factory, reason = select_engine(kind, tiny_model_dir)
        assert factory.func == IndexTTS2Engine.load and factory.args == (ModelFiles.flat(tiny_model_dir),)
        assert "IndexTTS2" in reason and str(tiny_model_dir) in reason


def test_auto_falls_back_to_the_quick_voice_naming_missing_files(tiny_model_dir, tmp_path):
    factory, reason = select_engine("auto", tmp_path / "empty")
    assert factory.__module__ == "index_tts.engines.quick"
    assert reason.startswith("quick voice") and "config.yaml" in reason

    # The tiny directory minus two files (linked, not copied: it is most of a gigabyte).
    gpt_name = yaml.safe_load((tiny_model_dir / "config.yaml").read_text())["gpt_checkpoint"]
    partial = tmp_path / "partial"
    for source in tiny_model_dir.rglob("*"):
        name = source.relative_to(tiny_model_dir).as_posix()
        if source.is_file() and name not in (gpt_name, "bigvgan/bigvgan_generator.pt"):
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            (partial / name).symlink_to(source)
    factory, reason = select_engine("auto", partial)
    assert factory.__module__ == "index_tts.engines.quick"
    assert gpt_name in reason and "bigvgan/bigvgan_generator.pt" in reason
    assert "campplus" not in reason  # only what is missing is named


# ---------------------------------------------------------------------------------------------
# loading and synthesis through the service


def test_loading_reports_stages_in_order(studio):
    assert [s for _, s in studio.stages] == LOAD_STAGES
    fractions = [f for f, _ in studio.stages]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    status = studio.synth.status()
    assert (status.state, status.engine, status.is_quick_voice, status.help) == ("ready", "IndexTTS2", False, "")
    assert status.version and status.device == "cpu"


def test_synthesis_gives_a_wav_matching_its_segment_timings(studio):
    text = "It was a cold day. The clocks were striking. He slipped through the doors."
    params = replace(FAST, max_text_tokens_per_segment=20, interval_silence_ms=150)
    expected = studio.synth.preview_segments(text, 20)
    assert len(expected) >= 2

    stages = []
    started = time.perf_counter()
    result = studio.synth.synthesize(SynthesisRequest(text=text, voice=studio.voice, generation=params),
                                     lambda f, stage: stages.append((f, stage)))
    print(f"\n[measure] {len(expected)} segments synthesized in {time.perf_counter() - started:.1f} s")
    audio = read_wav(result.path)
    assert result.engine == "IndexTTS2" and result.emotion_model == ""
    assert np.abs(audio).max() > 0

    assert [s[0] for s in result.segments] == [s.text for s in expected]
    assert result.segments[0][1] == 0.0
    assert round(result.segments[-1][2] * OUTPUT_SAMPLE_RATE) == len(audio)
    assert result.duration_s == pytest.approx(len(audio) / OUTPUT_SAMPLE_RATE)
    gap = int(OUTPUT_SAMPLE_RATE * params.interval_silence_ms / 1000)  # whole samples, truncated
    for (_, _, end), (_, start, _) in zip(result.segments, result.segments[1:]):
        a, b = round(end * OUTPUT_SAMPLE_RATE), round(start * OUTPUT_SAMPLE_RATE)
        assert b - a == gap and not audio[a:b].any()  # the interval silence sits exactly between segments

    names = [s for _, s in stages]
    speech = [f"speech synthesis {k + 1}/{len(expected)}" for k in range(len(expected))]
    assert names == ["checking the request", "waiting for the engine", "text processing", "processing the voice reference",
                     "computing the emotion", *speech, "finishing", "saving audio", "done"]
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_one_short_sentence(studio):
    started = time.perf_counter()
    result = studio.synth.synthesize(SynthesisRequest(text="Good morning.", voice=studio.voice, generation=FAST))
    print(f"\n[measure] one short sentence synthesized in {time.perf_counter() - started:.1f} s "
          f"({result.duration_s:.2f} s of audio)")
    assert len(result.segments) == 1 and len(read_wav(result.path)) == round(result.segments[0][2] * OUTPUT_SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------
# emotion


EMOTION_REQUESTS = {
    "same_as_voice": dict(emotion=EmotionSpec()),
    "audio": dict(emotion=EmotionSpec(mode="audio", weight=0.8), emotion_audio=(SR, buzz(260, 1.5))),
    "vector": dict(emotion=EmotionSpec(mode="vector", weight=0.8, vector=(0, 0.8, 0, 0, 0.2, 0, 0, 0))),
    "text": dict(emotion=EmotionSpec(mode="text", weight=0.8, text="I am furious and angry about this!")),
}


@pytest.mark.parametrize("mode", list(EMOTION_REQUESTS))
def test_every_emotion_mode_synthesizes(studio, mode):
    assert not (studio.engine.model_dir / QWEN_DIR_DEFAULT).exists()  # so text mode must fall back
    result = studio.synth.synthesize(SynthesisRequest(text=TEXT, voice=studio.voice, generation=FAST, **EMOTION_REQUESTS[mode]))
    audio = read_wav(result.path)
    assert len(audio) == round(result.segments[-1][2] * OUTPUT_SAMPLE_RATE) and np.abs(audio).max() > 0
    if mode == "text":
        assert result.emotion_model.startswith("lexicon") and "Qwen" in result.emotion_model
    else:
        assert result.emotion_model == ""


def test_emotion_modes_condition_the_gpt_differently(studio):
    engine = studio.engine
    prompt = engine.voice_prompt(studio.voice[1], SR)
    vectors = {}
    for mode, kw in EMOTION_REQUESTS.items():
        request = SynthesisRequest(text=TEXT, voice=studio.voice, **kw).validate()
        vectors[mode] = engine.emotion_vector(prompt, request.emotion, TEXT)
    modes = list(vectors)
    for i, a in enumerate(modes):
        for b in modes[i + 1:]:
            assert not torch.allclose(vectors[a], vectors[b]), (a, b)
    # Text mode is vector mode with the lexicon's weights when there is no Qwen model.
    weights, model = engine.text_emotion(EMOTION_REQUESTS["text"]["emotion"].text)
    assert model.startswith("lexicon") and weights[EMOTIONS.index("angry")] > 0
    as_vector = EmotionSpec(mode="vector", weight=0.8, vector=weights)
    torch.testing.assert_close(engine.emotion_vector(prompt, as_vector), vectors["text"], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# determinism, caches, concurrency


def test_a_seed_gives_identical_audio(studio):
    def run(seed):
        result = studio.synth.synthesize(SynthesisRequest(text=TEXT, voice=studio.voice, generation=replace(FAST, seed=seed)))
        return read_wav(result.path)

    first, second, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first, second)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_voices_sharing_a_path_do_not_share_a_cache_entry(studio, tmp_path):
    path = tmp_path / "voice.wav"
    engine = studio.engine

    def speak():
        request = SynthesisRequest(text=TEXT, voice=str(path), generation=FAST)
        key = request.validate().voice_key
        return key, read_wav(studio.synth.synthesize(request).path)

    sf.write(path, buzz(120), SR)
    key_a, audio_a = speak()
    sf.write(path, buzz(210), SR)  # another voice under the same name and path
    key_b, audio_b = speak()
    assert key_a != key_b and {key_a, key_b} <= set(engine._voices)
    assert not torch.equal(engine._voices[key_a].spk_cond_emb, engine._voices[key_b].spk_cond_emb)
    assert audio_a.shape != audio_b.shape or not np.array_equal(audio_a, audio_b)

    # The first voice again, under another name: same content, same entry, same audio.
    renamed = tmp_path / "renamed.wav"
    sf.write(renamed, buzz(120), SR)
    cached = len(engine._voices)
    request = SynthesisRequest(text=TEXT, voice=str(renamed), generation=FAST)
    assert request.validate().voice_key == key_a
    np.testing.assert_array_equal(read_wav(studio.synth.synthesize(request).path), audio_a)
    assert len(engine._voices) == cached


def test_concurrent_requests_stay_correct(studio):
    voices = [(SR, buzz(f0)) for f0 in (110, 150, 190, 230)]
    texts = [f"Request number {w} speaks now." for w in ("one", "two", "three", "four")]

    def one(i):
        emotion = EmotionSpec(mode="vector", weight=0.7, vector=tuple(0.6 if k == i else 0.0 for k in range(8)))
        request = SynthesisRequest(text=texts[i], voice=voices[i], emotion=emotion, generation=replace(FAST, seed=100 + i))
        return request, studio.synth.synthesize(request)

    with ThreadPoolExecutor(5) as pool:
        jobs = [pool.submit(one, i) for i in range(4)]
        previews = [pool.submit(studio.synth.preview_segments, texts[i % 4], 120) for i in range(8)]
        done = [j.result() for j in jobs]
        assert all(p.result() for p in previews)

    assert len({r.path for _, r in done}) == 4
    for request, result in done:
        audio = read_wav(result.path)
        assert len(audio) == round(result.segments[-1][2] * OUTPUT_SAMPLE_RATE)
        assert [s[0] for s in result.segments] == [s.text for s in studio.synth.preview_segments(request.text, 120)]
    # Each concurrent result is exactly what the same request gives alone.
    for request, result in (done[0], done[3]):
        alone = studio.synth.synthesize(request)
        np.testing.assert_array_equal(read_wav(alone.path), read_wav(result.path))


def test_settings_beyond_the_model_are_clamped_to_its_position_tables(studio, monkeypatch):
    """The UI allows 1815 codes and 600 tokens per segment (the official model's sizes); a smaller
    model must still work with them instead of indexing past its position embeddings."""
    import index_tts.engines.indextts2 as engine_module

    cfg = studio.engine.gpt.cfg
    assert cfg.max_mel_tokens < 1815 and cfg.max_text_tokens < 600  # the tiny model is smaller
    asked = []

    def spy(model, spk_cond_emb, text_tokens, emo_vec, params, **kw):
        asked.append((params.max_mel_tokens, text_tokens.size(-1)))
        return real(model, spk_cond_emb, text_tokens, emo_vec, params, **kw)

    real = engine_module.generate
    monkeypatch.setattr(engine_module, "generate", spy)
    text = " ".join(["This sentence goes on, and on, and on"] * 12) + "."
    params = replace(FAST, max_mel_tokens=1815, max_text_tokens_per_segment=600)
    segments = studio.synth.preview_segments(text, 600)
    assert len(segments) >= 2 and max(s.n_tokens for s in segments) <= cfg.max_text_tokens
    result = studio.synth.synthesize(SynthesisRequest(text=text, voice=studio.voice, generation=params))
    assert len(result.segments) == len(segments)
    assert [m for m, _ in asked] == [cfg.max_mel_tokens] * len(segments)
    assert max(n for _, n in asked) <= cfg.max_text_tokens


def test_inline_tags_give_each_part_its_emotion_vector(studio, monkeypatch):
    """The tagged parts reach IndexTTS2 one by one, each with its own emotion vector."""
    engine = studio.engine
    seen = []
    original = engine.emotion_vector

    def spy(prompt, emotion, *args, **kwargs):
        vector = original(prompt, emotion, *args, **kwargs)
        seen.append((emotion.mode, vector.detach().clone()))
        return vector

    monkeypatch.setattr(engine, "emotion_vector", spy)
    text = "Good morning. [sad:0.9] Good night. [pause 300ms] [angry] Go away."
    result = studio.synth.synthesize(SynthesisRequest(text=text, voice=studio.voice, generation=FAST))
    assert [mode for mode, _ in seen] == ["same_as_voice", "vector", "vector"]
    assert not torch.allclose(seen[1][1], seen[2][1]) and not torch.allclose(seen[0][1], seen[1][1])
    assert [s.emotion.split(" ")[0] for s in result.timeline] == ["same", "sad", "angry"]
    audio = read_wav(result.path)
    assert round(result.timeline[-1].end_s * OUTPUT_SAMPLE_RATE) == len(audio)
    pause = round(result.timeline[2].start_s * OUTPUT_SAMPLE_RATE) - round(result.timeline[1].end_s * OUTPUT_SAMPLE_RATE)
    assert pause == int(0.3 * OUTPUT_SAMPLE_RATE)
