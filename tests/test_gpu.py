"""CUDA path of the IndexTTS2 engine: the GPT runs in fp16 (as upstream's use_fp16), everything
else in fp32. Marked `gpu` and skipped without CUDA; the CPU path is covered by
test_indextts2_engine.py and the conformance pipeline cases."""

import numpy as np
import pytest
import torch

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.engines.indextts2 import IndexTTS2Engine

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_cuda_engine_runs_gpt_in_half_and_the_rest_in_float(tiny_model_dir):
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cuda:0")
    assert next(engine.gpt.parameters()).dtype == torch.float16
    for module in (engine.s2mel, engine.bigvgan, engine.w2v, engine.codec, engine.campplus):
        assert next(module.parameters()).dtype == torch.float32

    t = np.arange(22050 * 3) / 22050
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    request = EngineRequest(text="Good morning.", voice=voice, voice_sr=22050, voice_key="gpu-test",
                            emotion=EmotionSpec("vector", weight=0.8, vector=(0, 0.8, 0, 0, 0, 0, 0, 0)),
                            generation=GenerationParams(seed=1234, max_mel_tokens=60))
    out = engine.synthesize(request)
    assert out.sample_rate == 22050 and out.audio.dtype == np.int16
    assert out.audio.size == round(out.segments[-1][2] * 22050)


def _tokens_run(engine, mode: str, seed: int = 3):
    from index_tts.bench.workloads import reference_signal
    from index_tts.engines.indextts2 import Trace

    voice = engine.voice_prompt(reference_signal(3.0), 24000, key="gpu-modes")
    emovec = engine.emotion_vector(voice, EmotionSpec())
    trace = Trace({})
    tokens = [torch.tensor([[5, 9, 14, 3, 22, 8]], dtype=torch.int32)]
    params = GenerationParams(seed=seed, max_mel_tokens=40, quality=mode)
    wav, _ = engine.synthesize_tokens(voice, emovec, tokens, params, torch.Generator(device=engine.device).manual_seed(seed),
                                      trace=trace)
    return trace.values["seg0_codes"].tolist(), wav


def test_cuda_balanced_mode_keeps_the_codes_of_exact_mode(tiny_model_dir):
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cuda:0")
    exact_codes, exact_wav = _tokens_run(engine, "exact")
    balanced_codes, balanced_wav = _tokens_run(engine, "balanced")
    assert balanced_codes == exact_codes and len(exact_codes[0]) > 3
    assert balanced_wav.shape == exact_wav.shape


def test_cuda_graph_decode_step_keeps_the_codes(tiny_model_dir, monkeypatch):
    from index_tts.engines.precision import CUDA_GRAPHS_ENV

    engine = IndexTTS2Engine.load(tiny_model_dir, device="cuda:0")
    eager_codes, _ = _tokens_run(engine, "exact")
    monkeypatch.setenv(CUDA_GRAPHS_ENV, "1")
    graph_codes, _ = _tokens_run(engine, "exact")
    assert engine._static_gpt is not None and engine._static_gpt.graph is not None  # it was captured
    assert graph_codes == eager_codes


def test_cuda_plan_lands_on_its_planned_length(tiny_model_dir):
    """Duration control on CUDA: the plan's exact length at a factor is what finish renders (the CPU
    path: tests/test_duration.py)."""
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cuda:0")
    t = np.arange(22050 * 3) / 22050
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    request = EngineRequest(text="Good morning. See you soon.", voice=voice, voice_sr=22050, voice_key="gpu-plan",
                            generation=GenerationParams(seed=7, max_mel_tokens=60, max_text_tokens_per_segment=20))
    plan = engine.plan(request)
    for factor in (0.5, 1.0, 1.37, 2.0):
        assert engine.finish(plan, factor).audio.size == plan.samples(factor)
