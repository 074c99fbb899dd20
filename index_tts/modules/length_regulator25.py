"""How IndexTTS-2.5 drives the (unchanged) s2mel length regulator, with `duration_factor`
(spec-2.5 §2.6 steps 6-7, §6).

2.5's codec decoder gives 2 frames per code (50 Hz), and the mel length is
    target_len = int(S_len * 1.72 * duration_factor)
evaluated exactly as upstream's Python: IEEE doubles, left to right, truncated toward zero. This
differs from exact arithmetic and from float32 on some inputs (920 * 1.72 * 1.25 -> 1977, not 1978),
so it is computed here in Python floats, never in tensors. `duration_factor` > 1 slows speech down;
it changes nothing else (codes, prompt and GPT are untouched).

The prompt path differs from v2 too: the normalised w2v-BERT features themselves go into the
regulator (no codec on the prompt).
"""

from __future__ import annotations

import math

import torch

from index_tts.modules.length_regulator import InterpolateRegulator
from index_tts.modules.s2mel import MEL_FRAMES_PER_CODE

# The WebUI slider's range; `infer` itself does not clamp, the engine does (validated per request).
DURATION_FACTOR_RANGE = (0.5, 2.0)


def target_mel_frames(s_len: int, duration_factor: float = 1.0) -> int:
    """Mel frames for S_len = 2n codec frames: int(S_len * 1.72 * duration_factor) in doubles."""
    if not math.isfinite(duration_factor) or duration_factor <= 0:
        raise ValueError(f"duration_factor must be a positive number, got {duration_factor!r}")
    return int(int(s_len) * MEL_FRAMES_PER_CODE * float(duration_factor))


@torch.no_grad()
def regulate(regulator: InterpolateRegulator, s_infer: torch.Tensor, duration_factor: float = 1.0):
    """S_infer [1, S_len, in_channels] -> (cond [1, target_len, C], olens [1], target_len [1] int64)."""
    target = torch.tensor([target_mel_frames(s_infer.size(1), duration_factor)], device=s_infer.device)
    cond, olens = regulator(s_infer, target)
    return cond, olens, target


@torch.no_grad()
def prompt_condition(regulator: InterpolateRegulator, spk_cond_emb: torch.Tensor, ref_frames: int):
    """Voice prompt: normalised w2v features [1, T, 1024] -> (condition [1, ref_frames, C], olens)."""
    return regulator(spk_cond_emb, torch.tensor([ref_frames], device=spk_cond_emb.device))
