"""Which files an IndexTTS2 (2.0) or IndexTTS-2.5 model needs. Torch-free, so the studio can decide
which engine to run without importing the neural engine (the layout is in engines/indextts2.py),
and the doctor can check a store without importing any engine. Names are logical; `ModelFiles`
says where each one really is (a flat folder or the cache_hub hub cache)."""

import os

import yaml

from index_tts.model_store.layout import ModelFiles, as_model_files

# Files an IndexTTS2 model directory must hold (besides those config.yaml names).
AUX_FILES = (
    "w2v_bert/config.json",
    "w2v_bert/model.safetensors",
    "semantic_codec_model.safetensors",
    "campplus_cn_common.bin",
    "bigvgan/config.json",
    "bigvgan/bigvgan_generator.pt",
)


# IndexTTS-2.5: the codec decoder and the tiktoken ranks (file names hard-coded upstream) instead of
# the MaskGCT codec and bpe.model; w2v-BERT, CAMPPlus and BigVGAN are the same files as 2.0's.
AUX_FILES_25 = (
    "codec.pth",
    "multilingual_zh_ja_yue_char_del.tiktoken",
    *(name for name in AUX_FILES if name != "semantic_codec_model.safetensors"),
)


def _config_files(cfg: dict) -> list[str]:
    return [cfg["gpt_checkpoint"], cfg["s2mel_checkpoint"], cfg["spk_matrix"], cfg["emo_matrix"],
            cfg["w2v_stat"], cfg["dataset"]["bpe_model"]]


def required_files(model: "ModelFiles | str | os.PathLike", version: str = "2") -> list[str]:
    """Logical names of every file IndexTTS2 (version "2") or IndexTTS-2.5 (version "2.5") needs,
    config.yaml first; raises on a bad config."""
    files = as_model_files(model)
    cfg = yaml.safe_load(files.path("config.yaml").read_text(encoding="utf-8"))
    if version == "2.5":
        return ["config.yaml", *_config_files(cfg)[:-1], *AUX_FILES_25]  # 2.5 has no bpe_model
    return ["config.yaml", *_config_files(cfg), *AUX_FILES]


def missing_files(model: "ModelFiles | str | os.PathLike", version: str = "2") -> list[str]:
    """The files the model needs that `model` (a ModelFiles or a flat folder) lacks; empty when it can load."""
    files = as_model_files(model)
    if not files.path("config.yaml").is_file():
        return ["config.yaml"]
    try:
        names = required_files(files, version)
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        return [f"config.yaml (unreadable: {e})"]
    return [n for n in names if not files.path(n).is_file()]
