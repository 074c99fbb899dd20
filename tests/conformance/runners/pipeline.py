"""Runner for kind `pipeline`: a whole tiny upstream `infer()` run through IndexTTS2Engine.

The model directory is written from the case (configs + weight files, official layouts) and loaded
by the engine's real loader. Every stored intermediate is compared, in pipeline order.
"""

import json
import tempfile
from pathlib import Path

import torch
import yaml

from index_tts.emotion import EmotionSpec
from index_tts.engines.base import GenerationParams
from index_tts.engines.indextts2 import IndexTTS2Engine, Trace
from tests.conformance.harness import DEVICE, check, on_device, runner, write_model_files

CONFIG_FILES = ("config.yaml", "w2v_bert/config.json", "w2v_bert/preprocessor_config.json", "bigvgan/config.json")


def write_pipeline_model_dir(case: dict, directory: Path) -> None:
    """The case's configs and weights as an IndexTTS2 model directory."""
    write_model_files(case["weights"], directory)
    for name in CONFIG_FILES:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        value = case["config"][name]
        path.write_text(yaml.safe_dump(value) if name.endswith(".yaml") else json.dumps(value))


def emotion_spec(case: dict) -> EmotionSpec:
    mode, inp = case["config"]["mode"], case["inputs"]
    if mode == "same_as_speaker":
        return EmotionSpec("same_as_voice")
    if mode == "emo_audio":
        return EmotionSpec("audio", weight=inp["emo_alpha"], audio=inp["emo_audio"].numpy(), audio_sr=inp["emo_sample_rate"])
    if mode == "emo_vector":
        return EmotionSpec("vector", weight=inp["emo_alpha"], vector=tuple(inp["emo_vector"]))
    raise AssertionError(f"{case['name']}: unknown pipeline mode {mode!r}")


@runner("pipeline")
def run_pipeline(case):
    kw, inp = case["config"]["infer_kwargs"], case["inputs"]
    assert kw["decoding"] == "greedy", f"{case['name']}: only greedy pipeline cases can be deterministic"
    params = GenerationParams(do_sample=False, num_beams=1, repetition_penalty=kw["repetition_penalty"],
                              max_mel_tokens=kw["max_mel_tokens"], interval_silence_ms=kw["interval_silence"])
    with tempfile.TemporaryDirectory() as tmp:
        write_pipeline_model_dir(case, Path(tmp))
        engine = IndexTTS2Engine(Path(tmp), device=DEVICE)
        engine.fp16_gpt = False  # the fixtures are fp32 on every device
        engine._load_modules(progress=lambda f, s: None, text=False)

    trace = Trace({})
    prompt = engine.voice_prompt(inp["spk_audio"].numpy(), inp["spk_sample_rate"], trace=trace)
    emovec = engine.emotion_vector(prompt, emotion_spec(case), trace=trace)
    segments = [torch.tensor([ids], dtype=torch.int32) for ids in inp["text_segments"]]
    wav, _ = engine.synthesize_tokens(prompt, emovec, segments, params, noises=on_device(inp["z"]), trace=trace)
    check_pipeline(case, trace, wav)


def check_pipeline(case: dict, trace: Trace, wav: torch.Tensor) -> None:
    """Every output of a pipeline fixture (2.0 or 2.5): the traced intermediates and the waveform."""
    trace("wav_float", wav[None])
    trace("wav_int16", wav.to(torch.int16)[:, None])
    trace("sampling_rate", 22050)

    unchecked = sorted(set(case["outputs"]) - set(trace.values))
    assert not unchecked, f"{case['name']}: outputs the engine did not produce: {unchecked}"
    for name in case["outputs"]:
        check(case, name, trace.values[name])
