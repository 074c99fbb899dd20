"""The s2mel stage container (upstream `MyModel(cfg.s2mel, use_gpt_latent=True)`): semantic features
plus GPT latents -> mel frames. Holds three sub-modules whose state dicts are the three entries of the
official `s2mel.pth`: `{"net": {"cfm": ..., "length_regulator": ..., "gpt_layer": ...}}`.

    gpt_layer:        GPT latent [B, n, 1280] -> [B, n, 1024] (added to the codec embedding of the codes)
    length_regulator: [B, n, 1024] -> [B, floor(1.72 n), channels]
    cfm:              Euler flow-matching sampler over the DiT estimator (see flow_matching.py)

`load_s2mel_checkpoint` is strict: every tensor of `net` must be used except the few listed in
KNOWN_UNUSED_KEYS, and every parameter must be present.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import torch
from torch import Tensor, nn

from index_tts.modules import dit, length_regulator
from index_tts.modules.flow_matching import CFM, CFMConfig
from index_tts.modules.length_regulator import InterpolateRegulator, LengthRegulatorConfig

# Hard-coded in upstream: GPT model_dim 1280 -> 1024 (semantic codec width), with no activations.
GPT_LAYER_SIZES = (1280, 256, 128, 1024)

# Mel frames per semantic code: 22050/256 frames/s over 50 codes/s ≈ 1.7227, truncated to 1.72 upstream.
MEL_FRAMES_PER_CODE = 1.72

# Checkpoint tensors that inference never uses; skipped on load on purpose (full keys under `net`).
KNOWN_UNUSED_KEYS = frozenset(
    [f"cfm.estimator.{k}" for k in dit.KNOWN_UNUSED_KEYS]
    + [f"length_regulator.{k}" for k in length_regulator.KNOWN_UNUSED_KEYS]
)

SUBMODULES = ("cfm", "length_regulator", "gpt_layer")


@dataclass(frozen=True)
class S2MelConfig:
    cfm: CFMConfig
    length_regulator: LengthRegulatorConfig

    @classmethod
    def from_dict(cls, s2mel: dict) -> "S2MelConfig":
        """From the `s2mel` block of config.yaml (fixture configs use the same names)."""
        return cls(
            cfm=CFMConfig.from_dict(s2mel),
            length_regulator=LengthRegulatorConfig.from_dict(s2mel["length_regulator"]),
        )


def gpt_layer() -> nn.Sequential:
    """Three stacked Linears with no activation in between (upstream quirk: it is one linear map)."""
    a, b, c, d = GPT_LAYER_SIZES
    return nn.Sequential(nn.Linear(a, b), nn.Linear(b, c), nn.Linear(c, d))


def mel_frames_for_codes(code_lens: Tensor, duration_factor: float = 1.0) -> Tensor:
    """Target mel length for n semantic codes: `(code_lens * 1.72).long()` in float32 (truncation),
    as upstream. duration_factor (> 1 slower) scales it, as upstream PR #793 and 2.5 do: the same
    codes, regulated to more or fewer frames, which the DiT renders at a natural pitch."""
    frames = code_lens * MEL_FRAMES_PER_CODE
    return (frames if duration_factor == 1.0 else frames * duration_factor).long()


class S2Mel(nn.Module):
    """with_gpt_layer=False: IndexTTS-2.5's `MyModel(cfg.s2mel)` (no GPT latent is fused in); a
    `gpt_layer` entry in its file is then ignored on purpose."""

    def __init__(self, config: S2MelConfig, with_gpt_layer: bool = True):
        super().__init__()
        self.config = config
        self.parts = SUBMODULES if with_gpt_layer else SUBMODULES[:2]
        self.cfm = CFM(config.cfm)
        self.length_regulator = InterpolateRegulator(config.length_regulator)
        if with_gpt_layer:
            self.gpt_layer = gpt_layer()

    @classmethod
    def from_checkpoint(cls, config: S2MelConfig, path_or_dict, with_gpt_layer: bool = True) -> "S2Mel":
        """Build from config, load `s2mel.pth` strictly, switch to eval mode."""
        return load_s2mel_checkpoint(path_or_dict, cls(config, with_gpt_layer)).eval()


def _read_net(path_or_dict) -> dict:
    if isinstance(path_or_dict, (str, PathLike)):
        # Only `net` is used; optimizer, scheduler, iters and epoch (training state) are ignored.
        path_or_dict = torch.load(path_or_dict, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(path_or_dict, dict) or "net" not in path_or_dict:
        raise ValueError("s2mel checkpoint must be a dict with a 'net' entry")
    return path_or_dict["net"]


def s2mel_state_dict(path_or_dict, parts: tuple[str, ...] = SUBMODULES) -> dict[str, Tensor]:
    """The checkpoint's `net` entries `parts` as one flat state dict for `S2Mel`, `module.`
    prefixes stripped (as upstream's loader does) and KNOWN_UNUSED_KEYS dropped."""
    net = _read_net(path_or_dict)
    missing_parts = [name for name in parts if name not in net]
    if missing_parts:
        raise KeyError(f"s2mel checkpoint 'net' lacks {missing_parts}; it has {sorted(net)}")
    flat: dict[str, Tensor] = {}
    for name in parts:
        for key, value in net[name].items():
            key = key[len("module."):] if key.startswith("module.") else key
            full = f"{name}.{key}"
            if full not in KNOWN_UNUSED_KEYS:
                flat[full] = value
    return flat


def load_s2mel_checkpoint(path_or_dict, model: S2Mel) -> S2Mel:
    """Load `s2mel.pth` (a path, or the dict it holds) into `model`, strictly.

    Raises KeyError naming every missing or unexpected key (other than KNOWN_UNUSED_KEYS);
    shape mismatches raise from `load_state_dict`."""
    state = s2mel_state_dict(path_or_dict, model.parts)
    expected = set(model.state_dict())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise KeyError(f"s2mel checkpoint does not match the model: missing keys {missing}, unexpected keys {unexpected}")
    model.load_state_dict(state, strict=True)
    return model
