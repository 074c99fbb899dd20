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
