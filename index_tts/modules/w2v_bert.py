"""w2v-BERT 2.0 semantic features: normalised output of conformer layer 17 (spec §2.2.4, §4.9).

Upstream runs transformers' `Wav2Vec2BertModel` (24 layers) with output_hidden_states=True and
keeps `hidden_states[17]`, the output of the 17th conformer layer, then normalises it with
`wav2vec2bert_stats.pt`. Nothing above layer 17 influences that tensor and there is no final
encoder LayerNorm, so we build only the feature projection and the first 17 layers (411 M of the
580 M parameters) and never read the other weights from disk.

We reuse transformers' `Wav2Vec2BertFeatureProjection` and `Wav2Vec2BertEncoder` as submodules of
this module under their HF names, so our state dict *is* the flat HF checkpoint (minus the skipped
keys) and a strict `load_state_dict` is the whole key mapping.

Drift check (transformers 5.23 here vs 4.52.1 upstream), verified by the `w2v_bert` fixtures:
- 5.x routes attention through an attention interface and may pick SDPA; we force "eager", the
  only implementation 4.52 had for this model, so the position bias and the finfo.min key mask are
  added to the scores exactly as before.
- 5.x builds the padding mask with `create_bidirectional_mask`; it is the same additive
  finfo(float32).min on masked keys that 4.52 built by hand. Masked frames are still zeroed at
  the encoder input and before each depthwise conv. No correction was needed.

Shapes: B batch, T frames at 50 Hz (pairs of 10 ms fbank frames), D hidden (1024 official).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

OUTPUT_LAYER = 17  # upstream reads hidden_states[17]; the stats file, codec and conformers are fitted to it

# Checkpoint keys we skip on purpose. They are all *after* layer 17 in the forward pass, or
# training-only, so they cannot change hidden_states[17]:
#   encoder.layers.{17..N-1}.*   conformer layers above the one we read
#   masked_spec_embed            SpecAugment mask vector, used only in training
#   adapter.*, intermediate_ffn.*  post-encoder heads (absent from facebook/w2v-bert-2.0; add_adapter=False)
SKIPPED_PREFIXES = ("masked_spec_embed", "adapter.", "intermediate_ffn.")


@dataclass(frozen=True)
class W2VBertConfig:
    hf: dict = field(repr=False)  # the checkpoint's transformers `config.json`
    output_layer: int = OUTPUT_LAYER

    def __post_init__(self):
        total = int(self.hf.get("num_hidden_layers", 24))
        if total < self.output_layer:
            raise ValueError(f"w2v-BERT config has {total} layers; layer {self.output_layer} is needed")

    @property
    def hidden_size(self) -> int:
        return int(self.hf["hidden_size"])

    def truncated_hf_config(self):
        """The HF config of the model we actually build: `output_layer` layers, no training extras."""
        from transformers import Wav2Vec2BertConfig

        d = dict(self.hf)
        d.update(num_hidden_layers=self.output_layer, mask_time_prob=0.0, mask_feature_prob=0.0,
                 add_adapter=False, use_intermediate_ffn_before_adapter=False)
        cfg = Wav2Vec2BertConfig.from_dict(d)
        cfg._attn_implementation = "eager"  # see the drift note at the top
        return cfg


def is_skipped_key(key: str, output_layer: int) -> bool:
    """True for checkpoint keys that cannot affect hidden_states[output_layer] (see SKIPPED_PREFIXES)."""
    if key.startswith(SKIPPED_PREFIXES):
        return True
    parts = key.split(".")
    return len(parts) > 3 and parts[0] == "encoder" and parts[1] == "layers" and parts[2].isdigit() \
        and int(parts[2]) >= output_layer


class W2VBertEncoder(nn.Module):
    """Feature projection + the first 17 conformer layers of Wav2Vec2BertModel, plus the stats norm."""

    def __init__(self, config: W2VBertConfig):
        super().__init__()
        from transformers import Wav2Vec2BertModel

        self.config = config
        # Build the HF model without allocating memory, then keep only the two parts we run.
        with torch.device("meta"):
            hf = Wav2Vec2BertModel(config.truncated_hf_config())
        self.feature_projection = hf.feature_projection  # LayerNorm(160) + Linear(160 -> D)
        self.encoder = hf.encoder  # `output_layer` conformer layers, no final norm
        # Layer-17 statistics; not part of the HF checkpoint, so not persistent.
        self.register_buffer("mean", torch.zeros(config.hidden_size, device="meta"), persistent=False)
        self.register_buffer("var", torch.ones(config.hidden_size, device="meta"), persistent=False)

    # -----------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_dir(cls, model_dir: str | Path, stats_path: str | Path) -> W2VBertEncoder:
        """Load from an HF snapshot dir (config.json + model.safetensors) and `wav2vec2bert_stats.pt`.

        Strict: every tensor we need must be in the file, and every file key must be either used or
        one of the known-skipped keys; both failures name the keys.
        """
        from safetensors import safe_open

        model_dir = Path(model_dir)
        config = W2VBertConfig(json.loads((model_dir / "config.json").read_text()))
        model = cls(config)
        wanted = set(model.state_dict())

        state: dict[str, torch.Tensor] = {}
        unexpected = []
        with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
            for key in f.keys():
                if key in wanted:
                    state[key] = f.get_tensor(key)  # only the kept layers are ever read into memory
                elif not is_skipped_key(key, config.output_layer):
                    unexpected.append(key)
        missing = sorted(wanted - set(state))
        if unexpected or missing:
            raise KeyError(f"w2v-BERT checkpoint {model_dir / 'model.safetensors'} does not match: "
                           f"unexpected keys {sorted(unexpected)}, missing keys {missing}")
        model.load_state_dict(state, strict=True, assign=True)

        stats = torch.load(stats_path, map_location="cpu", weights_only=True)
        model.set_stats(stats["mean"], stats["var"])
        return model.eval()

    def set_stats(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        shape = (self.config.hidden_size,)
        if tuple(mean.shape) != shape or tuple(var.shape) != shape:
            raise ValueError(f"w2v-BERT stats must be {shape}, got mean {tuple(mean.shape)}, var {tuple(var.shape)}")
        self.mean = mean.detach().float().clone()
        self.var = var.detach().float().clone()

    # -----------------------------------------------------------------------------------------
    # Forward

    def raw_features(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states[17] of Wav2Vec2BertModel: [B, T, 160] features, [B, T] mask -> [B, T, D].

        Masked frames are still computed (upstream feeds them on); they only stop influencing the others.
        """
        h, _ = self.feature_projection(input_features)  # [B, T, D]
        return self.encoder(h, attention_mask=attention_mask).last_hidden_state  # [B, T, D]

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised layer-17 features `(h - mean) / sqrt(var)`: [B, T, 160] -> [B, T, D]."""
        h = self.raw_features(input_features, attention_mask)
        return (h - self.mean) / torch.sqrt(self.var)
