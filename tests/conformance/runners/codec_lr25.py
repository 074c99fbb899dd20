"""Runners for the 2.5 kinds around the codes: codec25_decode and length_regulator25."""

from __future__ import annotations

import torch

from index_tts.modules.codec25 import codec25_config, load_codec25
from index_tts.modules.length_regulator25 import prompt_condition, regulate, target_mel_frames
from index_tts.modules.s2mel import S2Mel, S2MelConfig, load_s2mel_checkpoint
from tests.conformance.harness import DEVICE, check, on_device, runner, state_dict


def _calls(inputs: dict, prefix: str) -> list[int]:
    calls = sorted(int(k[len(prefix):]) for k in inputs if k.startswith(prefix) and k[len(prefix):].isdigit())
    assert calls, f"no {prefix}{{j}} inputs in case"
    return calls


@runner("codec25_decode")
def run_codec_decode(case: dict) -> None:
    codec = load_codec25(state_dict(case["weights"]), codec25_config(case["config"]["semantic_codec"])).to(DEVICE)
    with torch.no_grad():
        for j in _calls(case["inputs"], "codes"):
            for name, value in codec.decode_steps(on_device(case["inputs"][f"codes{j}"])).items():
                check(case, f"{name}{j}", value)


@runner("length_regulator25")
def run_length_regulator(case: dict) -> None:
    model = S2Mel(S2MelConfig.from_dict(case["config"]["s2mel"]), with_gpt_layer=False)
    model = load_s2mel_checkpoint(state_dict(case["weights"]), model).eval().to(DEVICE)
    inp = on_device(case["inputs"])
    cond, olens = prompt_condition(model.length_regulator, inp["spk_cond_emb"], int(inp["ref_len"][0]))
    check(case, "prompt_condition", cond)
    check(case, "prompt_olens", olens)
    for j in _calls(inp, "S_infer"):
        cond, olens, target = regulate(model.length_regulator, inp[f"S_infer{j}"], inp[f"duration_factor{j}"])
        check(case, f"target_len{j}", target)
        check(case, f"cond{j}", cond)
        check(case, f"olens{j}", olens)
    table = case["outputs"]["target_len_table"]
    check(case, "target_len_table", [[n, s, f, target_mel_frames(s, f)] for n, s, f, _ in table])
