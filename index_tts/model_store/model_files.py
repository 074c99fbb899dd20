"""Which files an IndexTTS2 model needs. Torch-free, so the studio can decide which engine to run
without importing the neural engine (the layout is in engines/indextts2.py), and the doctor can
check a store without importing any engine. Names are logical; `ModelFiles` says where each one
really is (a flat folder or the cache_hub hub cache)."""

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


def _config_files(cfg: dict) -> list[str]:
    return [cfg["gpt_checkpoint"], cfg["s2mel_checkpoint"], cfg["spk_matrix"], cfg["emo_matrix"],
            cfg["w2v_stat"], cfg["dataset"]["bpe_model"]]


def required_files(model: "ModelFiles | str | os.PathLike") -> list[str]:
    """Logical names of every file IndexTTS2 needs (config.yaml first); raises on a bad config."""
    files = as_model_files(model)
    cfg = yaml.safe_load(files.path("config.yaml").read_text(encoding="utf-8"))
    return ["config.yaml", *_config_files(cfg), *AUX_FILES]


def missing_files(model: "ModelFiles | str | os.PathLike") -> list[str]:
    """The files IndexTTS2 needs that `model` (a ModelFiles or a flat folder) lacks; empty when it can load."""
    files = as_model_files(model)
    if not files.path("config.yaml").is_file():
        return ["config.yaml"]
    try:
        names = required_files(files)
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        return [f"config.yaml (unreadable: {e})"]
    return [n for n in names if not files.path(n).is_file()]
