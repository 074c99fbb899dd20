"""Write a complete IndexTTS-2.5 model directory filled with seeded random weights.

    python -m index_tts.tools.make_model_dir OUT_DIR --config tiny-2.5|official-2.5 [--seed N]

The 2.5 counterpart of `make_model_dir.py` (same recipe, same per-file seeding, the shared files
planned by the same functions), in the layout `IndexTTS25Engine` loads (engines/indextts25.py):
`gpt.pth` (UnifiedVoice 2.5, `text_head` included), `codec.pth` (`{'model': sd}`, the encoder half
included), `s2mel.pth` without `gpt_layer`, a tiktoken rank file, and the w2v-BERT, CAMPPlus and
BigVGAN files exactly as for 2.0.

Configs:
- `tiny-2.5`: the 2.5 fixtures' pipeline sizes (GPT d64, 2 layers; DiT d64; BigVGAN ch 64) and a
  rank file of 256 bytes + merges learned from a few sentences in five languages; about 170 M
  parameters, mostly the hard-coded w2v-BERT (1024 wide, 17 layers) and CAMPPlus.
- `official-2.5`: `index_tts/configs/indextts25.yaml` (v2 values, 60509 text tokens). Its rank file
  is still the tiny one with `number_text_tokens` padded: the official ranks are not public.
"""

from __future__ import annotations

import base64
import collections
import copy
import math
from pathlib import Path

import yaml
from torch import nn

from index_tts.tools import make_model_dir as mmd

OFFICIAL_CONFIG_25 = Path(__file__).resolve().parents[1] / "configs" / "indextts25.yaml"
CONFIGS_25 = ("tiny-2.5", "official-2.5")
RANK_MERGES = 320
SPECIALS = 1673  # tokenizer25.special_tokens()

# Lower-case, as the 2.5 front end lower-cases zh/en/ja text before encoding.
RANK_CORPUS = (
    "the quick brown fox jumps over the lazy dog. hello, this is a test of the speech studio!",
    "what a wonderful day to read a book? one two three four five six seven eight nine ten.",
    "she sells sea shells by the sea shore, and he laughs. please speak slowly and clearly.",
    "你好,欢迎使用语音合成.今天天气很好,我们一起去公园散步吧!这是一个测试句子.",
    "一二三四五六七八九十百千万年月日点分.他说,我真的很生气,也很难过.",
    "こんにちは 、 今日 は いい 天気 です ね . 東京 タワー は 高い です .",
    "EL RÁPIDO ZORRO MARRÓN SALTA SOBRE EL PERRO PEREZOSO. BUENOS DÍAS, ¿CÓMO ESTÁS?",
    "مرحبا بكم في استوديو الكلام",
)


def gpt2_byte_order() -> list[int]:
    """GPT-2's byte order: printable bytes first, so id 0 is '!' and id 1 is '"' as upstream."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return printable + [b for b in range(256) if b not in printable]


def train_ranks(merges: int = RANK_MERGES) -> bytes:
    """A tiny byte-level BPE rank file (tiktoken format) learned from RANK_CORPUS."""
    import regex

    from index_tts.text.tokenizer25 import PAT_STR

    ranks = {bytes([b]): i for i, b in enumerate(gpt2_byte_order())}
    words = collections.Counter(
        tuple(bytes([b]) for b in piece.encode("utf-8")) for line in RANK_CORPUS for piece in regex.findall(PAT_STR, line))
    for _ in range(merges):
        pairs: collections.Counter = collections.Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))  # deterministic tie-break
        ranks[a + b] = len(ranks)
        merged = collections.Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()).encode("ascii")


def tiny_config_25(n_ranks: int) -> dict:
    cfg = copy.deepcopy(mmd.TINY_CONFIG)
    cfg["dataset"]["bpe_model"] = "multilingual_zh_ja_yue_char_del.tiktoken"
    cfg["gpt"].update(model_dim=64, heads=4, number_text_tokens=n_ranks + SPECIALS)
    cfg["version"] = 2.5
    return cfg


def resolve_configs_25(choice: str, n_ranks: int) -> tuple[dict, dict, dict]:
    if choice == "tiny-2.5":
        _, bigvgan, w2v = mmd.resolve_configs("tiny")
        return tiny_config_25(n_ranks), bigvgan, w2v
    if choice == "official-2.5":
        _, bigvgan, w2v = mmd.resolve_configs("official")
        return yaml.safe_load(OFFICIAL_CONFIG_25.read_text(encoding="utf-8")), bigvgan, w2v
    raise ValueError(f"2.5 config must be one of {', '.join(CONFIGS_25)}, got {choice!r}")


# ---------------------------------------------------------------------------------------------
# Plans of the files that differ from 2.0


def gpt25_plan(cfg: dict) -> mmd.WeightFile:
    from index_tts.modules.unified_voice import UnifiedVoiceConfig
    from index_tts.modules.unified_voice25 import KNOWN_UNUSED, UnifiedVoice25

    gcfg = UnifiedVoiceConfig.from_dict(cfg["gpt"])
    with mmd.parameters_on_meta():
        model = UnifiedVoice25(gcfg)
    file = mmd.WeightFile(cfg["gpt_checkpoint"])
    mmd.plan_module(model, file)
    n = gcfg.number_text_tokens + 1  # text_head: in the file, never used at inference
    assert set(KNOWN_UNUSED) == {"text_head.weight", "text_head.bias"}, KNOWN_UNUSED
    file.add("text_head.weight", (n, gcfg.model_dim), "normal", 1.0 / math.sqrt(gcfg.model_dim))
    file.add("text_head.bias", (n,), "normal", 0.05)
    return file


def codec25_plan(cfg: dict) -> mmd.WeightFile:
    """EnhancedCodec in the file's key order: down, up, encoder, decoder, quantizer."""
    from index_tts.modules.codec25 import CodecDecoder25, codec25_config
    from index_tts.modules.semantic_codec import VocosBackbone

    c = codec25_config(cfg["semantic_codec"])
    h = c.hidden_size
    with mmd.parameters_on_meta():
        model = CodecDecoder25(c)
        down = nn.Conv1d(h, h, 3, stride=2, padding=1)  # encode path only (skipped by our loader)
        encoder = nn.Sequential(VocosBackbone(h, c.vocos_dim, c.vocos_intermediate_dim, c.vocos_num_layers),
                                nn.Linear(c.vocos_dim, h))
    file = mmd.WeightFile("codec.pth")
    for prefix, module in (("down.", down), ("up.", model.up), ("encoder.", encoder), ("decoder.", model.decoder),
                           ("quantizer.", model.quantizer)):
        mmd.plan_module(module, file, prefix=f"model/{prefix}")
    return file


def s2mel25_plan(cfg: dict) -> mmd.WeightFile:
    """s2mel.pth as 2.5 loads it: cfm and length_regulator, no gpt_layer."""
    file = mmd.s2mel_plan(cfg)
    file.entries = [e for e in file.entries if not e[0].startswith("net/gpt_layer/")]
    file.buffers = {k: v for k, v in file.buffers.items() if not k.startswith("net/gpt_layer/")}
    return file


def all_plans_25(cfg: dict, bigvgan_config: dict, w2v_config: dict) -> list:
    """Plan factories, one per weight file, in seed order."""
    return [lambda: gpt25_plan(cfg), lambda: s2mel25_plan(cfg), lambda: codec25_plan(cfg), mmd.campplus_plan,
            lambda: mmd.bigvgan_plan(bigvgan_config), lambda: mmd.w2v_plan(w2v_config),
            *[(lambda f=f: f) for f in mmd.small_plans(cfg, w2v_config)]]


def make_model_dir(out_dir: str | Path, config: str = "tiny-2.5", seed: int = 0, log=lambda msg: None) -> Path:
    """Write the 2.5 model directory; returns its path. Existing files with the same names are replaced.
    (The same signature as make_model_dir.make_model_dir, which hands the 2.5 configs to it.)"""
    from index_tts.text.tokenizer25 import RANK_FILE

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = train_ranks()
    n_ranks = ranks.count(b"\n")
    cfg, bigvgan_config, w2v_config = resolve_configs_25(config, n_ranks)
    if cfg["gpt"]["number_text_tokens"] < n_ranks + SPECIALS:
        raise ValueError(f"gpt.number_text_tokens {cfg['gpt']['number_text_tokens']} < {n_ranks} ranks + {SPECIALS} specials")
    (out / RANK_FILE).write_bytes(ranks)
    mmd.write_configs(out, cfg, bigvgan_config, w2v_config)
    mmd.write_weights(out, all_plans_25(cfg, bigvgan_config, w2v_config), seed, log)
    return out
