"""Runners for the self-contained leaf models: `bigvgan`, `campplus`, `codec` (README §5.14, §5.6, §5.7).

Each writes the weights as the official file would hold them and goes through our real loader.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from tests.conformance.harness import DEVICE, check, on_device, runner, state_dict


@runner("bigvgan")
def run_bigvgan(case: dict) -> None:
    from index_tts.modules.bigvgan import load_bigvgan

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.json").write_text(json.dumps(case["config"]["bigvgan_config_json"]))
        torch.save(state_dict(case["weights"]), tmp / "bigvgan_generator.pt")
        model = load_bigvgan(tmp)
    with torch.inference_mode():
        wav = model.to(DEVICE)(on_device(case["inputs"]["mel"].float()))
    check(case, "wav", wav)


@runner("campplus")
def run_campplus(case: dict) -> None:
    from index_tts.modules.campplus import load_campplus

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "campplus_cn_common.bin"
        torch.save(state_dict(case["weights"]), path)
        model = load_campplus(path, **case["config"]["campplus"])
    with torch.inference_mode():
        embedding = model.to(DEVICE)(on_device(case["inputs"]["feat"].float()))
    check(case, "embedding", embedding)


@runner("codec")
def run_codec(case: dict) -> None:
    from safetensors.torch import save_file

    from index_tts.modules.semantic_codec import SemanticCodecConfig, load_semantic_codec

    cfg = SemanticCodecConfig.from_dict(case["config"]["semantic_codec"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state_dict(case["weights"]).items()}, str(path))
        codec = load_semantic_codec(path, cfg)
    with torch.inference_mode():
        codec, inp = codec.to(DEVICE), on_device(case["inputs"])
        indices, quantized = codec.quantize(inp["x"].float())
        emb = codec.vq2emb(inp["codes"][:, None, :])
    check(case, "indices", indices)
    check(case, "quantized", quantized)
    check(case, "vq2emb", emb)
