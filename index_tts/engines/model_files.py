"""Which files an IndexTTS2 model directory needs. Torch-free, so the studio can decide which
engine to run without importing the neural engine (the layout is in engines/indextts2.py)."""

from pathlib import Path

import yaml

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


def missing_files(model_dir: Path) -> list[str]:
    """The files IndexTTS2 needs that `model_dir` lacks (empty when it can load)."""
    model_dir = Path(model_dir)
    config = model_dir / "config.yaml"
    if not config.is_file():
        return ["config.yaml"]
    try:
        names = _config_files(yaml.safe_load(config.read_text(encoding="utf-8")))
    except (yaml.YAMLError, KeyError, TypeError) as e:
        return [f"config.yaml (unreadable: {e})"]
    return [n for n in (*names, *AUX_FILES) if not (model_dir / n).is_file()]
