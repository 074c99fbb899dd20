"""Runner for kind `pipeline25`: a whole tiny upstream 2.5 `infer()` run through IndexTTS25Engine.

The case's files are written as our model directory (upstream's `hf_cache/` names mapped to ours)
and loaded by the engine's real loaders. The GPT gets the case's own token ids (the front end is
checked by text_frontend25). Every stored intermediate is compared, in pipeline order.
"""

import json
import tempfile
from pathlib import Path

import torch
import yaml

from index_tts.engines.base import GenerationParams
from index_tts.engines.indextts2 import Trace
from index_tts.engines.indextts25 import IndexTTS25Engine
from index_tts.text.tokenizer25 import RANK_FILE
from tests.conformance.harness import DEVICE, on_device, runner, write_model_files
from tests.conformance.runners.pipeline import check_pipeline, emotion_spec

# Upstream's model_dir/hf_cache layout -> our model directory's names.
OUR_NAMES = {
    "hf_cache/w2v-bert-2.0/": "w2v_bert/",
    "hf_cache/bigvgan/": "bigvgan/",
    "hf_cache/campplus_cn_common.bin": "campplus_cn_common.bin",
}
CONFIG_FILES = ("config.yaml", "hf_cache/w2v-bert-2.0/config.json", "hf_cache/w2v-bert-2.0/preprocessor_config.json",
                "hf_cache/bigvgan/config.json")


def our_name(name: str) -> str:
    for theirs, ours in OUR_NAMES.items():
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    return name


def write_model_dir25(case: dict, directory: Path) -> None:
    weights = {our_name(k): v for k, v in case["weights"].items() if k != RANK_FILE}
    write_model_files(weights, directory)
    (directory / RANK_FILE).write_bytes(case["weights"][RANK_FILE].numpy().tobytes())
    for name in CONFIG_FILES:
        path = directory / our_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        value = case["config"][name]
        path.write_text(yaml.safe_dump(value) if name.endswith(".yaml") else json.dumps(value))


@runner("pipeline25")
def run_pipeline25(case):
    kw, inp = case["config"]["infer_kwargs"], case["inputs"]
    assert kw["decoding"] == "greedy", f"{case['name']}: only greedy pipeline cases can be deterministic"
    assert (kw["diffusion_steps"], kw["inference_cfg_rate"]) == (25, 0.7)
    params = GenerationParams(do_sample=False, num_beams=1, repetition_penalty=kw["repetition_penalty"],
                              max_mel_tokens=kw["max_mel_tokens"], interval_silence_ms=kw["interval_silence"],
                              duration_factor=kw["duration_factor"])
    with tempfile.TemporaryDirectory() as tmp:
        write_model_dir25(case, Path(tmp))
        engine = IndexTTS25Engine(Path(tmp), device=DEVICE)
        engine.fp16_gpt = False  # the fixtures are fp32 on every device (upstream runs 2.5's GPT in bf16 on a GPU)
        engine._load_modules(progress=lambda f, s: None, text=False)

    trace = Trace({})
    prompt = engine.voice_prompt(inp["spk_audio"].numpy(), inp["spk_sample_rate"], trace=trace)
    # 2.5 cases keep emo_alpha / emo_vector in infer_kwargs; v2's helper reads them from inputs.
    spec = emotion_spec({**case, "inputs": {**kw, **{k: v for k, v in inp.items() if v is not None}}})
    emovec = engine.emotion_vector(prompt, spec, trace=trace)
    segments = [torch.tensor([ids], dtype=torch.int32) for ids in inp["text_segments"]]
    wav, _ = engine.synthesize_tokens(prompt, emovec, segments, params, noises=on_device(inp["z"]), trace=trace,
                                      lang=int(inp["lang_id"]), duration_factor=kw["duration_factor"])
    check_pipeline(case, trace, wav)
