"""Write a complete IndexTTS2 model directory filled with seeded random weights.

    python -m index_tts.tools.make_model_dir OUT_DIR [--config tiny|official|PATH] [--seed N]

The directory has the official on-disk layout (see `index_tts/engines/indextts2.py`): every weight
file is in the format and under the keys the official file uses, so `IndexTTS2Engine.load(OUT_DIR)`
goes through the real loaders. The numbers are random, so the speech is noise-like; this exists
for tests, benchmarks and load-time/memory measurements without the real (multi-GB) downloads.

Weights follow the conformance fixtures' `seeded-normal-v1` recipe (fixtures README §3): one
(key, shape, kind, std) entry per float tensor, tensor i of file seed s drawn from a CPU generator
seeded `s * 1_000_003 + i`; deterministic buffers (sinusoid tables, RoPE frequencies, anti-alias
filters, BatchNorm counters) keep the values the modules construct. File k of the directory uses
seed `seed + k`.

Configs:
- `tiny`: the fixtures' pipeline sizes (GPT 2 layers, DiT d64, BigVGAN ch 64, ...). Upstream
  hard-codes w2v-BERT width 1024 with 17 layers, codec width 1024, GPT width 1280 and the full
  CAMPPlus, so even `tiny` is about 200 M parameters (~0.8 GB on disk).
- `official`: `index_tts/configs/indextts2_v2.yaml`, BigVGAN v2 22 kHz 80-band 256x and the
  default w2v-BERT 2.0 config: about 1.7 G parameters (~7 GB).
- PATH: any IndexTTS2 `config.yaml`, with the official BigVGAN and w2v-BERT configs.
The configs are data in `model_dir_configs.py`. A model with other files (IndexTTS-2.5) gets its
own module, named in `OTHER_MODELS`, that reuses the plans and `write_configs`/`write_weights`.

Memory: modules are built with their parameters on the meta device (buffers are real, since
their values are needed) and each file's tensors are drawn one at a time, so the peak is about the
largest single file (gpt.pth, ~3.5 GB at the official size).

Every key of the official files is written, including those inference never reads (GPT
`text_head`, the codec decoder, DiT/length-regulator discrete-content tensors, w2v-BERT layers
17-23). Not written: the Qwen emotion model and the training state in s2mel.pth.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import nn

from index_tts.tools.model_dir_configs import (BPE_CORPUS, BPE_MAX_VOCAB, PREPROCESSOR_CONFIG, TINY_BIGVGAN_CONFIG,
                                               TINY_CONFIG, TINY_W2V_OVERRIDES)

OFFICIAL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "indextts2_v2.yaml"
OFFICIAL_BIGVGAN_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bigvgan_v2_22khz_80band_256x.json"
# Config names whose model has other files (IndexTTS-2.5): name -> the module that writes them,
# with the same `make_model_dir(out_dir, config, seed, log)`. It reuses the plans and writers here.
OTHER_MODELS: dict[str, str] = {"tiny-2.5": "index_tts.tools.make_model_dir_25",
                                 "official-2.5": "index_tts.tools.make_model_dir_25"}


# ---------------------------------------------------------------------------------------------
# The plan of one weight file


@dataclass
class WeightFile:
    """One file of the model directory: random entries plus deterministic buffers.

    Keys use `/` for nesting levels inside the saved object (`net/cfm/...`, `generator/...`) and
    `.` for module paths, as the fixtures and checkpoint manifests do."""

    name: str  # path relative to the model directory
    entries: list[tuple[str, tuple[int, ...], str, float]] = field(default_factory=list)  # key, shape, kind, std
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, key: str, shape, kind: str, std: float) -> None:
        self.entries.append((key, tuple(int(s) for s in shape), kind, _f32(std)))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {k: s for k, s, _, _ in self.entries}
        out.update({k: tuple(v.shape) for k, v in self.buffers.items()})
        return out


def _f32(x: float) -> float:
    """The nearest float32 (the recipe's stds are exactly representable in float32)."""
    return float(torch.tensor(x, dtype=torch.float32))


@contextlib.contextmanager
def parameters_on_meta():
    """Build modules with parameters on the meta device but real buffers.

    `torch.device("meta")` would also empty the buffers (sinusoid tables, filters), whose values
    we must write. Each parameter is created on the CPU and moved right away, so only one exists
    at a time."""
    original = nn.Module.register_parameter

    def register(module, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def init_rule(owner: nn.Module, name: str, shape: tuple[int, ...]) -> tuple[str, float]:
    """The fixture recipe's (kind, std) for parameter (or BatchNorm statistic) `name` of `owner`."""
    from index_tts.modules.alias_free import SnakeBeta
    from index_tts.modules.unified_voice import Conv1D

    if name == "weight_g":
        return "pos", 0.25
    if name == "running_mean":
        return "normal", 0.1
    if name == "running_var":
        return "pos", 0.25
    if isinstance(owner, SnakeBeta):  # log-scale alpha, beta
        return "normal", 0.2
    if name in ("pos_bias_u", "pos_bias_v"):
        return "normal", 0.5
    if isinstance(owner, nn.Embedding) or name in ("latents", "mask_token", "masked_spec_embed"):
        return "normal", 1.0
    if name == "bias":
        return "normal", 0.05
    if name == "gamma" or len(shape) == 1:  # every 1-D weight here is a norm scale
        return "one", 0.1
    if isinstance(owner, nn.ConvTranspose1d):  # weight [in, out, k]
        return "normal", 1.0 / math.sqrt(shape[0] * shape[2] / owner.stride[0])
    if isinstance(owner, Conv1D):  # HF GPT-2 Conv1D weight [in, out]
        return "normal", 1.0 / math.sqrt(shape[0])
    return "normal", 1.0 / math.sqrt(math.prod(shape[1:]))  # Linear/conv: 1/sqrt(fan_in)


def plan_module(module: nn.Module, file: WeightFile, prefix: str = "") -> None:
    """Add `module`'s state dict to `file`: parameters and BatchNorm statistics as random
    entries, every other buffer (and num_batches_tracked) with its constructed value."""
    owners = dict(module.named_modules())
    params = {k for k, _ in module.named_parameters()}
    for key, value in module.state_dict().items():
        owner_name, _, name = key.rpartition(".")
        if key in params or name in ("running_mean", "running_var"):
            kind, std = init_rule(owners[owner_name], name, tuple(value.shape))
            file.add(prefix + key, value.shape, kind, std)
        else:
            file.buffers[prefix + key] = value.detach().clone()


# ---------------------------------------------------------------------------------------------
# Per-file plans (also used by tests/conformance/test_manifest.py on the official config)


def gpt_plan(cfg: dict) -> WeightFile:
    from index_tts.modules.unified_voice import KNOWN_UNUSED, UnifiedVoice, UnifiedVoiceConfig

    gcfg = UnifiedVoiceConfig.from_dict(cfg["gpt"])
    with parameters_on_meta():
        model = UnifiedVoice(gcfg)
    file = WeightFile(cfg["gpt_checkpoint"])
    plan_module(model, file)
    # text_head = Linear(model_dim, number_text_tokens + 1): trained, never used at inference.
    n = gcfg.number_text_tokens + 1
    assert set(KNOWN_UNUSED) == {"text_head.weight", "text_head.bias"}, KNOWN_UNUSED
    file.add("text_head.weight", (n, gcfg.model_dim), "normal", 1.0 / math.sqrt(gcfg.model_dim))
    file.add("text_head.bias", (n,), "normal", 0.05)
    return file


def s2mel_plan(cfg: dict) -> WeightFile:
    from index_tts.modules.s2mel import KNOWN_UNUSED_KEYS, S2Mel, S2MelConfig

    with parameters_on_meta():
        model = S2Mel(S2MelConfig.from_dict(cfg["s2mel"]))
    file = WeightFile(cfg["s2mel_checkpoint"])
    for part in ("cfm", "length_regulator", "gpt_layer"):
        plan_module(getattr(model, part), file, prefix=f"net/{part}/")
    # Tensors of the discrete-content / training paths that inference never reads.
    dit, lr = cfg["s2mel"]["DiT"], cfg["s2mel"]["length_regulator"]
    h, c = dit["hidden_dim"], lr["channels"]
    unused = [
        ("cfm", "estimator.x_embedder.weight_g", (h, 1), "pos", 0.25),
        ("cfm", "estimator.x_embedder.weight_v", (h, dit["in_channels"]), "normal", 1.0 / math.sqrt(dit["in_channels"])),
        ("cfm", "estimator.x_embedder.bias", (h,), "normal", 0.05),
        ("cfm", "estimator.cond_embedder.weight", (dit["content_codebook_size"], h), "normal", 1.0),
        ("cfm", "estimator.content_mask_embedder.weight", (1, h), "normal", 1.0),
        ("length_regulator", "embedding.weight", (lr["content_codebook_size"], c), "normal", 1.0),
        ("length_regulator", "mask_token", (1, c), "normal", 1.0),
    ]
    assert {f"{p}.{k}" for p, k, *_ in unused} == set(KNOWN_UNUSED_KEYS), sorted(KNOWN_UNUSED_KEYS)
    for part, key, shape, kind, std in unused:
        file.add(f"net/{part}/{key}", shape, kind, std)
    return file


def codec_plan(cfg: dict) -> WeightFile:
    from index_tts.modules.semantic_codec import RepCodec, SemanticCodecConfig, VocosBackbone

    c = SemanticCodecConfig.from_dict(cfg["semantic_codec"])
    with parameters_on_meta():
        model = RepCodec(c)
        # The codec's decoder (never run at inference, skipped by our loader) mirrors the encoder.
        decoder = nn.Sequential(VocosBackbone(c.hidden_size, c.vocos_dim, c.vocos_intermediate_dim, c.vocos_num_layers),
                                nn.Linear(c.vocos_dim, c.hidden_size))
    file = WeightFile("semantic_codec_model.safetensors")
    plan_module(model.encoder, file, prefix="encoder.")
    plan_module(decoder, file, prefix="decoder.")
    plan_module(model.quantizer, file, prefix="quantizer.")
    return file


def campplus_plan() -> WeightFile:
    from index_tts.modules.campplus import CAMPPlus

    with parameters_on_meta():
        model = CAMPPlus()  # upstream infer hard-codes CAMPPlus(feat_dim=80, embedding_size=192)
    file = WeightFile("campplus_cn_common.bin")
    plan_module(model, file)
    return file


def bigvgan_plan(bigvgan_config: dict) -> WeightFile:
    from index_tts.modules.bigvgan import BigVGAN, BigVGANConfig

    with parameters_on_meta():
        model = BigVGAN(BigVGANConfig.from_dict(bigvgan_config))
    file = WeightFile("bigvgan/bigvgan_generator.pt")
    plan_module(model, file, prefix="generator/")
    # A smaller output gain keeps the random waveform mostly inside the final clamp (README §3).
    file.entries = [(k, s, "normal", _f32(0.3)) if k == "generator/conv_post.weight_g" else (k, s, kind, std)
                    for k, s, kind, std in file.entries]
    return file


def w2v_plan(w2v_config: dict) -> WeightFile:
    """The whole HF `Wav2Vec2BertModel` as facebook/w2v-bert-2.0 stores it (all layers)."""
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    with parameters_on_meta():
        model = Wav2Vec2BertModel(Wav2Vec2BertConfig.from_dict(w2v_config))
    file = WeightFile("w2v_bert/model.safetensors")
    plan_module(model, file)
    return file


def small_plans(cfg: dict, w2v_config: dict) -> list[WeightFile]:
    """stats, feat1 (spk_matrix) and feat2 (emo_matrix)."""
    rows, width = sum(cfg["emo_num"]), w2v_config["hidden_size"]
    stats = WeightFile(cfg["w2v_stat"])
    stats.add("mean", (width,), "normal", 0.5)
    stats.add("var", (width,), "pos", 1.0)
    spk = WeightFile(cfg["spk_matrix"])
    spk.add("", (rows, 192), "normal", 0.3)  # CAMPPlus style vectors
    emo = WeightFile(cfg["emo_matrix"])
    emo.add("", (rows, cfg["gpt"]["model_dim"]), "normal", 1.0)  # GPT emotion vectors
    return [stats, spk, emo]


def all_plans(cfg: dict, bigvgan_config: dict, w2v_config: dict) -> list[WeightFile]:
    return [gpt_plan(cfg), s2mel_plan(cfg), codec_plan(cfg), campplus_plan(), bigvgan_plan(bigvgan_config),
            w2v_plan(w2v_config), *small_plans(cfg, w2v_config)]


# ---------------------------------------------------------------------------------------------
# Materialising and writing


def draw(kind: str, shape: tuple[int, ...], std: float, generator_seed: int) -> torch.Tensor:
    """One tensor of recipe `seeded-normal-v1` (fixtures README §3)."""
    if kind == "zero":
        return torch.zeros(shape, dtype=torch.float32)
    t = torch.randn(shape, generator=torch.Generator().manual_seed(generator_seed), dtype=torch.float32)
    if kind == "normal":
        return t * std
    if kind == "one":
        return 1.0 + t * std
    if kind == "pos":
        return 0.5 + t.abs() * std
    raise ValueError(f"unknown init kind {kind!r}")


def _nest(flat: dict[str, torch.Tensor]) -> dict:
    out: dict = {}
    for key, v in flat.items():
        *levels, last = key.split("/")
        d = out
        for level in levels:
            d = d.setdefault(level, {})
        d[last] = v
    return out


def write_file(file: WeightFile, directory: Path, seed: int) -> None:
    flat = {key: draw(kind, shape, std, seed * 1_000_003 + i) for i, (key, shape, kind, std) in enumerate(file.entries)}
    flat.update(file.buffers)
    path = directory / file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if list(flat) == [""]:  # feat1.pt / feat2.pt hold a bare tensor
        torch.save(flat[""], path)
    elif file.name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in flat.items()}, str(path))
    else:
        torch.save(_nest(flat), path)


def train_bpe(vocab_size: int) -> bytes:
    """A tiny SentencePiece BPE model (unk 0, bos 1, eos 2) trained on BPE_CORPUS."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(BPE_CORPUS), model_writer=out, model_type="bpe", vocab_size=vocab_size,
        hard_vocab_limit=False,  # the corpus is small: fewer pieces than asked is fine
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    return out.getvalue()


def resolve_configs(choice: str) -> tuple[dict, dict, dict]:
    """(config.yaml, bigvgan/config.json, w2v_bert/config.json) dicts for `tiny`, `official` or a yaml PATH."""
    from transformers import Wav2Vec2BertConfig

    official_w2v = Wav2Vec2BertConfig().to_dict()
    official_bigvgan = json.loads(OFFICIAL_BIGVGAN_CONFIG.read_text(encoding="utf-8"))
    if choice == "tiny":
        return json.loads(json.dumps(TINY_CONFIG)), dict(TINY_BIGVGAN_CONFIG), {**official_w2v, **TINY_W2V_OVERRIDES}
    path = OFFICIAL_CONFIG if choice == "official" else Path(choice)
    if not path.is_file():
        raise FileNotFoundError(f"config {choice!r}: {path} is not a file")
    return yaml.safe_load(path.read_text(encoding="utf-8")), official_bigvgan, official_w2v


def write_configs(out: Path, cfg: dict, bigvgan_config: dict, w2v_config: dict) -> None:
    """config.yaml, bigvgan/config.json and w2v-BERT's config and preprocessor config."""
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (out / "bigvgan").mkdir(exist_ok=True)
    (out / "bigvgan" / "config.json").write_text(json.dumps(bigvgan_config, indent=2), encoding="utf-8")
    (out / "w2v_bert").mkdir(exist_ok=True)
    (out / "w2v_bert" / "config.json").write_text(json.dumps(w2v_config, indent=2), encoding="utf-8")
    (out / "w2v_bert" / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2), encoding="utf-8")


def write_weights(out: Path, plans, seed: int, log=lambda msg: None) -> None:
    """Plan and write one file at a time (`plans`: functions returning a WeightFile), so only one
    file's tensors are ever in memory. File k uses seed `seed + k`."""
    for k, make_plan in enumerate(plans):
        file = make_plan()
        write_file(file, out, seed + k)
        log(f"wrote {file.name} ({sum(math.prod(s) for _, s, _, _ in file.entries) / 1e6:.1f} M random values)")


def make_model_dir(out_dir: str | Path, config: str = "tiny", seed: int = 0, log=lambda msg: None) -> Path:
    """Write the model directory; returns its path. Existing files with the same names are replaced."""
    if config in OTHER_MODELS:
        return importlib.import_module(OTHER_MODELS[config]).make_model_dir(out_dir, config, seed, log)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg, bigvgan_config, w2v_config = resolve_configs(config)
    write_configs(out, cfg, bigvgan_config, w2v_config)
    bpe_path = out / cfg["dataset"]["bpe_model"]
    bpe_path.write_bytes(train_bpe(min(BPE_MAX_VOCAB, cfg["gpt"]["number_text_tokens"])))
    write_weights(out, (lambda: gpt_plan(cfg), lambda: s2mel_plan(cfg), lambda: codec_plan(cfg), campplus_plan,
                        lambda: bigvgan_plan(bigvgan_config), lambda: w2v_plan(w2v_config),
                        *[(lambda f=f: f) for f in small_plans(cfg, w2v_config)]), seed, log)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m index_tts.tools.make_model_dir", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="directory to write (created if needed)")
    parser.add_argument("--config", default="tiny",
                        help=f"tiny (default), official, {', '.join(OTHER_MODELS) + ', ' if OTHER_MODELS else ''}or a path to a config.yaml")
    parser.add_argument("--seed", type=int, default=0, help="base seed; file k uses seed + k")
    args = parser.parse_args(argv)
    make_model_dir(args.out_dir, args.config, args.seed, log=lambda msg: print(msg, file=sys.stderr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
