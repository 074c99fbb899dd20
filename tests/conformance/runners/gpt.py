"""Runners for the UnifiedVoice v2 kinds: gpt_conditioning, gpt_forward, gpt_generate."""

from __future__ import annotations

import torch

from index_tts.modules.generation import DecodeParams, generate
from index_tts.modules.unified_voice import UnifiedVoiceConfig, load_gpt_checkpoint
from tests.conformance.harness import DEVICE, check, on_device, runner, state_dict


def _model(case: dict):
    cfg = UnifiedVoiceConfig.from_dict(case["config"]["gpt"])
    return load_gpt_checkpoint(state_dict(case["weights"]), cfg).to(DEVICE)


@runner("gpt_conditioning")
def run_conditioning(case: dict) -> None:
    model, inp = _model(case), on_device(case["inputs"])
    spk, emo = inp["spk_cond_emb"], inp["emo_cond_emb"]
    spk_len, emo_len = inp["cond_lengths"], inp["emo_cond_lengths"]
    with torch.no_grad():
        spk_out, spk_mask = model.speaker_conformer(spk, spk_len)
        check(case, "spk_conformer_out", spk_out)
        check(case, "spk_conformer_mask", spk_mask)
        check(case, "spk_latent", model.get_conditioning(spk, spk_len))
        emo_out, _ = model.emotion_conformer(emo, emo_len)
        check(case, "emo_conformer_out", emo_out)
        check(case, "emovec_emo", model.get_emovec(emo, emo_len))
        check(case, "emovec_spk", model.get_emovec(spk, spk_len))
        merged = model.merge_emovec(spk, emo, inp["alpha"], spk_lengths=spk_len, emo_lengths=emo_len)
        check(case, "emovec_merged", merged)


@runner("gpt_forward")
def run_forward(case: dict) -> None:
    model, inp = _model(case), on_device(case["inputs"])
    with torch.no_grad():
        latent = model.forward_latent(inp["speech_conditioning_latent"], inp["text_tokens"], inp["codes"], inp["emo_vec"])
    check(case, "latent", latent)


def decode_params(generation_kwargs: dict) -> DecodeParams:
    """The fixture's HF generate() kwargs as our DecodeParams (HF defaults where absent)."""
    kw = dict(generation_kwargs)
    params = DecodeParams(
        do_sample=kw.pop("do_sample", False),
        num_beams=kw.pop("num_beams", 1),
        repetition_penalty=kw.pop("repetition_penalty", 1.0),
        length_penalty=kw.pop("length_penalty", 1.0),
        max_mel_tokens=kw.pop("max_generate_length"),
        temperature=kw.pop("temperature", 1.0),
        top_k=kw.pop("top_k", 0),
        top_p=kw.pop("top_p", 1.0),
    )
    assert kw.pop("num_return_sequences", 1) == 1
    assert not kw, f"unhandled generation kwargs {kw}"
    return params


def check_generation(case: dict, res, record: int) -> None:
    """Every output of a generate fixture (2.0 or 2.5) against our GenerationResult."""
    outputs = case["outputs"]
    check(case, "codes", res.codes)
    check(case, "code_len", torch.tensor([res.code_len]))
    check(case, "codes_trimmed", res.codes[:, : res.code_len])
    check(case, "speech_conditioning_latent", res.spk_latent)
    if "sequences_scores" in outputs:
        check(case, "sequences_scores", torch.tensor([res.sequence_score], dtype=torch.float32))
    if record:
        check(case, "logits_first5", torch.cat(res.step_logits))
        check(case, "scores_first5", torch.cat(res.step_scores))
    extra = set(outputs) - {"codes", "code_len", "codes_trimmed", "speech_conditioning_latent",
                            "sequences_scores", "logits_first5", "scores_first5"}
    assert not extra, f"outputs not checked: {sorted(extra)}"


@runner("gpt_generate")
def run_generate(case: dict) -> None:
    model, inp = _model(case), on_device(case["inputs"])
    params = decode_params(inp["generation_kwargs"])
    outputs = case["outputs"]
    record = outputs["logits_first5"].size(0) if "logits_first5" in outputs else 0
    with torch.no_grad():
        emo_vec = inp.get("emo_vec")
        if emo_vec is None:  # upstream then derives it from the emotion features alone
            emo_vec = model.get_emovec(inp["emo_cond_emb"], inp.get("emo_cond_lengths"))
        res = generate(model, inp["spk_cond_emb"], inp["text_tokens"], emo_vec, params,
                       spk_lengths=inp["cond_lengths"], record_steps=record)
    check_generation(case, res, record)
