"""Runners for the UnifiedVoice 2.5 kinds: gpt25_conditioning, gpt25_forward, gpt25_generate."""

from __future__ import annotations

import torch

from index_tts.modules.unified_voice import UnifiedVoiceConfig
from index_tts.modules.unified_voice25 import COND_ROWS, generate25, load_gpt25_checkpoint
from tests.conformance.harness import DEVICE, check, on_device, runner, state_dict
from tests.conformance.runners.gpt import check_generation, decode_params


def _model(case: dict):
    assert case["config"].get("spk_cond_mode", "campplus") == "campplus"
    cfg = UnifiedVoiceConfig.from_dict(case["config"]["gpt"])
    return load_gpt25_checkpoint(state_dict(case["weights"]), cfg).to(DEVICE)


@runner("gpt25_conditioning")
def run_conditioning(case: dict) -> None:
    model, inp = _model(case), on_device(case["inputs"])
    spk, emo = inp["spk_cond_emb"], inp["emo_cond_emb"]
    spk_len, emo_len = inp["cond_lengths"], inp["emo_cond_lengths"]
    with torch.no_grad():
        spk_latent = model.speaker_latent(inp["style"])
        check(case, "spk_proj", spk_latent[:, 0])
        check(case, "emo_conformer_out", model.emotion_conformer(emo, emo_len)[0])
        check(case, "emovec_spk", model.get_emovec(spk, spk_len))
        check(case, "emovec_emo", model.get_emovec(emo, emo_len))
        merged = model.merge_emovec(spk, emo, inp["alpha"], spk_lengths=spk_len, emo_lengths=emo_len)
        check(case, "emovec_merged", merged)
        check(case, "conds", model.build_conds(spk_latent, merged))


@runner("gpt25_forward")
def run_forward(case: dict) -> None:
    model, inp = _model(case), on_device(case["inputs"])
    tokens, lang, cfg = inp["text_tokens"], int(inp["langs"][0]), model.cfg
    with torch.no_grad():
        spk_latent = model.speaker_latent(inp["style"])
        conds = model.build_conds(spk_latent, inp["emo_vec"])
        check(case, "conds", conds)
        kept = model.kept_text(tokens)
        pad = tokens.size(1) - kept.numel()
        # Upstream's bookkeeping around the prompt: p masked zero rows in front, fake ids of ones.
        embeds = torch.cat([torch.zeros(1, pad, cfg.model_dim, device=DEVICE), conds, model.embed_text(kept, lang)], dim=1)
        check(case, "inputs_embeds", embeds)
        rows = pad + COND_ROWS + kept.numel() + 2 + 1
        input_ids = torch.ones(1, rows, dtype=torch.long, device=DEVICE)
        input_ids[0, -1] = cfg.start_mel_token
        check(case, "input_ids", input_ids)
        check(case, "attention_mask", (torch.arange(rows, device=DEVICE) >= pad).long()[None])
        check(case, "logits", model.forward_codes(spk_latent, inp["emo_vec"], tokens, lang, inp["codes"]))


@runner("gpt25_generate")
def run_generate(case: dict) -> None:
    model, inp = _model(case), on_device(case["inputs"])
    params = decode_params(inp["generation_kwargs"])
    outputs = case["outputs"]
    record = outputs["logits_first5"].size(0) if "logits_first5" in outputs else 0
    res = generate25(model, inp["style"], inp["text_tokens"], int(inp["langs"][0]), inp["emo_vec"], params,
                     record_steps=record)
    check_generation(case, res, record)
