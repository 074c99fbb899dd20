"""IndexTTS-2.5 checkpoint manifests (tests/fixtures/checkpoint-manifest-2.5/, or
$INDEX_TTS_MANIFESTS_25), mirroring test_manifest.py: our 2.5 modules at the 2.5 config carry
exactly the official keys and shapes (plus the keys declared as skipped on purpose), the shared
files are the 2.0 ones, and `make_model_dir_25`'s official plans write the manifests' keys,
shapes and dtypes."""

import os
from pathlib import Path

import pytest
import torch
import yaml

from tests.conformance.harness import FIXTURES_ROOT
from tests.conformance.test_manifest import CONFIGS, assert_matches, shapes

MANIFESTS_25 = Path(os.environ.get("INDEX_TTS_MANIFESTS_25", FIXTURES_ROOT / "checkpoint-manifest-2.5"))
OFFICIAL_25 = yaml.safe_load((CONFIGS / "indextts25.yaml").read_text(encoding="utf-8"))
FIXTURES_25 = FIXTURES_ROOT / "indextts25"


def manifest(name: str) -> dict[str, tuple[int, ...]]:
    import json

    return {key: tuple(shape) for key, shape, _ in json.loads((MANIFESTS_25 / name).read_text())}


def manifest_dtypes(name: str) -> dict[str, str]:
    import json

    return {key: dtype for key, _, dtype in json.loads((MANIFESTS_25 / name).read_text())}


def check_gpt():
    from index_tts.modules.unified_voice import UnifiedVoiceConfig
    from index_tts.modules.unified_voice25 import KNOWN_UNUSED, UnifiedVoice25

    with torch.device("meta"):
        model = UnifiedVoice25(UnifiedVoiceConfig.from_dict(OFFICIAL_25["gpt"]))
    assert_matches("gpt.pth", shapes(model), set(KNOWN_UNUSED), manifest("gpt.pth.json"))


def check_codec():
    from index_tts.modules.codec25 import UNUSED_PREFIXES, CodecDecoder25, codec25_config

    official = manifest("codec.pth.json")
    with torch.device("meta"):
        model = CodecDecoder25(codec25_config(OFFICIAL_25["semantic_codec"]))
    unused = {k for k in official if k.removeprefix("model/").startswith(UNUSED_PREFIXES)}
    assert "model/down.weight" in unused and "model/encoder.1.weight" in unused
    assert_matches("codec.pth", shapes(model, prefix="model/"), unused, official)


def check_s2mel():
    from index_tts.modules.s2mel import KNOWN_UNUSED_KEYS, S2Mel, S2MelConfig

    with torch.device("meta"):
        model = S2Mel(S2MelConfig.from_dict(OFFICIAL_25["s2mel"]), with_gpt_layer=False)
    ours = {}
    for part in model.parts:
        ours.update(shapes(getattr(model, part), prefix=f"net/{part}/"))
    unused = {"net/" + key.replace(".", "/", 1) for key in KNOWN_UNUSED_KEYS}
    assert_matches("s2mel.pth", ours, unused, manifest("s2mel.pth.json"))


def check_shared(name):
    """w2v-BERT stats, CAMPPlus and BigVGAN: the very files 2.0 uses (the cache_hub shares them)."""
    from tests.conformance.test_manifest import MANIFESTS

    assert manifest(f"{name}.json") == {k: tuple(s) for k, s in _v2(MANIFESTS / f"{name}.json").items()}


def _v2(path: Path) -> dict:
    import json

    return {key: shape for key, shape, _ in json.loads(path.read_text())}


def check_matrices():
    from transformers import Wav2Vec2BertConfig

    from index_tts.tools.make_model_dir import small_plans

    _, spk, emo = small_plans(OFFICIAL_25, Wav2Vec2BertConfig().to_dict())  # the files are bare tensors
    assert spk.shapes() == {"": manifest("feat1.pt.json")["<tensor>"]}
    assert emo.shapes() == {"": manifest("feat2.pt.json")["<tensor>"]}


CHECKS = {
    "gpt.pth": check_gpt,
    "codec.pth": check_codec,
    "s2mel.pth": check_s2mel,
    "campplus_cn_common.bin": lambda: check_shared("campplus_cn_common.bin"),
    "bigvgan_generator.pt": lambda: check_shared("bigvgan_generator.pt"),
    "wav2vec2bert_stats.pt": lambda: check_shared("wav2vec2bert_stats.pt"),
    "feat1.pt": check_matrices,
    "feat2.pt": check_matrices,
}


def test_manifest_directory_exists():
    assert MANIFESTS_25.is_dir(), f"2.5 checkpoint manifests not found at {MANIFESTS_25} (set INDEX_TTS_MANIFESTS_25)"


@pytest.mark.parametrize("name", list(CHECKS))
def test_module_keys_and_shapes_equal_official_25_manifest(name):
    CHECKS[name]()


def test_every_25_manifest_is_checked():
    files = {p.name.removesuffix(".json") for p in MANIFESTS_25.glob("*.json")} - {"params-summary"}
    assert files == set(CHECKS)


@pytest.mark.parametrize("file_name,manifest_name", [("gpt.pth", "gpt.pth.json"), ("codec.pth", "codec.pth.json"),
                                                     ("s2mel.pth", "s2mel.pth.json")])
def test_make_model_dir_official_25_plan_writes_the_manifest(file_name, manifest_name):
    from index_tts.tools import make_model_dir_25 as mmd25

    plan = {"gpt.pth": mmd25.gpt25_plan, "codec.pth": mmd25.codec25_plan, "s2mel.pth": mmd25.s2mel25_plan}[file_name](OFFICIAL_25)
    ours = plan.shapes()
    assert_matches(file_name, ours, set(), manifest(manifest_name))
    dtypes = manifest_dtypes(manifest_name)
    buffer_dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in plan.buffers.items()}
    wrong = {k: (buffer_dtypes.get(k, "float32"), dtypes[k]) for k in ours if buffer_dtypes.get(k, "float32") != dtypes[k]}
    assert not wrong, f"{file_name}: dtype (ours, official): {wrong}"


def test_make_model_dir_25_init_kinds_match_the_fixture_recipe():
    """The 2.5 pipeline fixture's own config planned by make_model_dir_25: the recipe's keys,
    shapes, kinds and stds for the files that differ from 2.0."""
    from index_tts.tools import make_model_dir_25 as mmd25

    case = torch.load(FIXTURES_25 / "pipeline25_same_as_speaker_a.pt", weights_only=True)
    cfg = case["config"]["config.yaml"]
    plans = {"gpt.pth": mmd25.gpt25_plan(cfg), "codec.pth": mmd25.codec25_plan(cfg), "s2mel.pth": mmd25.s2mel25_plan(cfg)}
    for file_name, plan in plans.items():
        weights = case["weights"][file_name]
        ours = {k: (s, kind, std) for k, s, kind, std in plan.entries}
        theirs = {k: (tuple(s), kind, std) for k, s, kind, std in weights["keys"]}
        assert set(ours) == set(theirs), f"{file_name}: {sorted(set(ours) ^ set(theirs))[:10]}"
        wrong = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        assert not wrong, f"{file_name}: (ours, fixture) {dict(list(wrong.items())[:10])}"
        assert set(plan.buffers) == set(weights["buffers"]), file_name
