"""Runners for the s2mel fixture kinds: `s2mel_length_regulator`, `dit_forward`, `cfm_inference`.

Each builds `S2Mel` from the case's `s2mel` config block and loads the weights through the real
strict loader (`load_s2mel_checkpoint`)."""

from __future__ import annotations

import torch

from index_tts.modules.flow_matching import time_grid
from index_tts.modules.s2mel import S2Mel, S2MelConfig, load_s2mel_checkpoint, mel_frames_for_codes
from tests.conformance.harness import DEVICE, check, on_device, runner, state_dict


def build_s2mel(case: dict) -> S2Mel:
    model = S2Mel(S2MelConfig.from_dict(case["config"]["s2mel"]))
    return load_s2mel_checkpoint(state_dict(case["weights"]), model).eval().to(DEVICE)


@runner("s2mel_length_regulator")
def run_length_regulator(case: dict) -> None:
    model = build_s2mel(case)
    inputs = on_device(case["inputs"])
    calls = sorted(int(k[1:]) for k in inputs if k.startswith("x") and k[1:].isdigit())
    assert calls, "no x{j} inputs in case"
    with torch.no_grad():
        for j in calls:
            out, olens = model.length_regulator(inputs[f"x{j}"], ylens=inputs[f"ylens{j}"])
            check(case, f"out{j}", out)
            check(case, f"olens{j}", olens)
        if "target_lengths" in case["outputs"]:
            check(case, "target_lengths", mel_frames_for_codes(inputs["code_lens"]))
        if "gpt_layer_out" in case["outputs"]:
            check(case, "gpt_layer_out", model.gpt_layer(inputs["gpt_latent"]))


@runner("dit_forward")
def run_dit_forward(case: dict) -> None:
    model = build_s2mel(case)
    i = on_device(case["inputs"])
    with torch.no_grad():
        out = model.cfm.estimator(i["x"], i["prompt_x"], i["x_lens"], i["t"], i["style"], i["cond"])
    check(case, "out", out)


@runner("cfm_inference")
def run_cfm_inference(case: dict) -> None:
    model = build_s2mel(case)
    i = on_device(case["inputs"])
    n_timesteps = int(i.get("n_timesteps", case["config"].get("n_timesteps", 25)))
    cfg_rate = float(i.get("inference_cfg_rate", case["config"].get("inference_cfg_rate", 0.7)))
    temperature = float(case["config"].get("temperature", 1.0))
    out = model.cfm.inference(
        i["mu"], i["x_lens"], i["prompt"], i["style"],
        n_timesteps=n_timesteps, cfg_rate=cfg_rate, z=i["z"], temperature=temperature,
    )
    check(case, "out", out)
    if "t_span" in case["outputs"]:
        check(case, "t_span", time_grid(n_timesteps))
