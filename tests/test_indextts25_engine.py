"""IndexTTS-2.5 end to end on a tiny random model written by `make_model_dir --config tiny-2.5`:
loading, the four emotion modes through the real service (an engine factory, as the studio's),
streaming per segment, duration_factor, languages and the per-voice cache. The weights are random,
so audio is checked for form (lengths, timings, determinism), never for speech.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.engines.indextts25 import IndexTTS25Engine, detect_language
from index_tts.engines.indextts2 import missing_files  # the engine contract re-exports it
from index_tts.modules.length_regulator25 import target_mel_frames
from index_tts.service import Synthesizer, SynthesisRequest
from tests.test_indextts2_engine import SR, buzz

TEXT = "Hello there, this is a short test. It has two sentences!"
# Greedy with a code cap: random weights seldom stop, so each segment has a known code count.
FAST = GenerationParams(do_sample=False, num_beams=1, max_mel_tokens=50, max_text_tokens_per_segment=20, seed=7)
LOAD_STAGES = ["loading GPT", "loading s2mel", "loading w2v-BERT", "loading codec decoder", "loading CAMPPlus",
               "loading BigVGAN", "loading emotion matrices", "loading text front end", "ready"]
EMOTION_REQUESTS = {
    "same_as_voice": dict(emotion=EmotionSpec()),
    "audio": dict(emotion=EmotionSpec(mode="audio", weight=0.6), emotion_audio=(SR, buzz(260, 1.5))),
    "vector": dict(emotion=EmotionSpec(mode="vector", weight=0.8, vector=(0, 0.8, 0, 0, 0.2, 0, 0, 0))),
    "text": dict(emotion=EmotionSpec(mode="text", weight=0.8, text="I am furious and angry about this!")),
}


@pytest.fixture(scope="module")
def tiny25_dir(tiny25_model_dir) -> Path:
    return tiny25_model_dir


@pytest.fixture(scope="module")
def studio25(tiny25_dir, tmp_path_factory):
    stages, engines = [], []

    def load(progress):
        engine = IndexTTS25Engine.load(tiny25_dir, lambda f, s: (stages.append(s), progress(f, s)), device="cpu")
        engines.append(engine)
        return engine

    synth = Synthesizer(load, data_dir=tmp_path_factory.mktemp("studio25-data"), selection_reason="IndexTTS-2.5 (test)").start()
    assert synth.wait_until_loaded(900) == "ready", synth.status().error
    return SimpleNamespace(synth=synth, engine=engines[0], stages=stages, voice=(SR, buzz(140)))


def request(text: str = TEXT, **kw) -> EngineRequest:
    return EngineRequest(text=text, voice=buzz(140), voice_sr=SR, voice_key="buzz140", generation=FAST, **kw)


def test_tiny_25_directory_is_complete_for_25_and_not_for_20(tiny25_dir):
    assert missing_files(tiny25_dir, "2.5") == []
    assert missing_files(tiny25_dir) == ["semantic_codec_model.safetensors"]  # 2.0 needs the MaskGCT codec


def test_loading_reports_stages_in_order(studio25):
    assert studio25.stages == LOAD_STAGES
    assert studio25.engine.version == "2.5" and studio25.engine.name == "IndexTTS-2.5"


@pytest.mark.parametrize("mode", list(EMOTION_REQUESTS))
def test_every_emotion_mode_synthesizes_through_the_service(studio25, mode):
    result = studio25.synth.synthesize(SynthesisRequest(text=TEXT, voice=studio25.voice, generation=FAST,
                                                        **EMOTION_REQUESTS[mode]))
    audio, sr = sf.read(result.path, dtype="int16")
    assert sr == 22050 and np.abs(audio).max() > 0
    assert len(audio) == round(result.segments[-1][2] * sr)
    assert len(result.segments) >= 2  # 20-token segments: the two sentences are split
    assert result.emotion_model.startswith("lexicon") if mode == "text" else result.emotion_model == ""


def test_emotion_modes_give_different_emotion_vectors(studio25):
    engine = studio25.engine
    prompt = engine.voice_prompt(buzz(140), SR)
    vectors = {m: engine.emotion_vector(prompt, SynthesisRequest(text=TEXT, voice=studio25.voice, **kw).validate().emotion, TEXT)
               for m, kw in EMOTION_REQUESTS.items()}
    names = list(vectors)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(vectors[a], vectors[b]), (a, b)


def test_segments_stream_in_order_and_join_to_the_result(studio25):
    engine, streamed = studio25.engine, []
    out = engine.synthesize(request(), on_segment=lambda k, pcm, sr: streamed.append((k, pcm, sr)))
    assert [k for k, _, _ in streamed] == list(range(len(out.segments))) and len(streamed) >= 2
    gap = np.zeros(int(22050 * FAST.interval_silence_ms / 1000), dtype=np.int16)
    joined = np.concatenate([x for k, pcm, _ in streamed for x in ((gap, pcm) if k else (pcm,))])
    np.testing.assert_array_equal(joined, out.audio)


def test_duration_factor_sets_the_mel_length_of_each_segment(studio25):
    from index_tts.engines.indextts2 import Trace

    engine = studio25.engine
    prompt = engine.voice_prompt(buzz(140), SR)
    emovec = engine.emotion_vector(prompt, EmotionSpec())
    ids = [torch.tensor([engine.front_end.tokenizer.encode("<|en|> hello there") + [1]], dtype=torch.int32)]
    for factor in (1.0, 1.6, 0.5):
        trace = Trace({})
        wav, lengths = engine.synthesize_tokens(prompt, emovec, ids, FAST, trace=trace, lang=0, duration_factor=factor)
        n = trace.values["seg0_codes"].size(1)
        assert n > 0 and trace.values["seg0_S_infer"].size(1) == 2 * n  # the codec decoder doubles the frames
        assert int(trace.values["seg0_target_len"]) == target_mel_frames(2 * n, factor)
        assert lengths == [256 * target_mel_frames(2 * n, factor)]


def test_language_auto_detection_and_explicit_choice(studio25):
    assert [detect_language(t) for t in ("你好", "你好 world", "こんにちは", "مرحبا", "¿Qué tal?", "Hello")] == \
        ["zh", "zhen", "ja", "ar", "es", "en"]
    engine = studio25.engine
    assert [s.text for s in engine.segments("Hola, ¿qué tal?", 120, "es")] == ["HOLA, ¿QUÉ TAL?"]
    assert [s.text for s in engine.segments("Hello, World.", 120)] == ["hello, world."]
    with pytest.raises(ValueError, match="language must be one of"):
        engine.synthesize(request(language="xx"))


def test_the_voice_is_computed_once_per_voice_key(studio25):
    engine = studio25.engine
    engine.synthesize(request())
    prompt = engine._voices["buzz140"]
    engine.synthesize(request(text="Another sentence."))
    assert engine._voices["buzz140"] is prompt
    assert prompt.spk_latent.shape == (1, 1, engine.gpt.cfg.model_dim)  # one speaker row in 2.5
