"""Full-size checkpoint manifests: our modules, built from the official configs on the meta device,
carry exactly the official keys and shapes.

For every file in tests/fixtures/checkpoint-manifest/ (or $INDEX_TTS_MANIFESTS): (our state-dict keys with shapes) ∪ (the keys
the module declares as skipped on purpose) == the manifest, keys and shapes, with missing/extra
keys reported by name. w2v-BERT has no manifest there; its reference is transformers'
`Wav2Vec2BertModel(Wav2Vec2BertConfig())` (facebook/w2v-bert-2.0's config).

The second half checks `index_tts.tools.make_model_dir`: its plan for the official config writes
the manifests' keys, shapes and dtypes, and its `tiny` plan gives each tensor the same init kind
and std as the fixtures' recipe for the same config.
"""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from tests.conformance.harness import FIXTURE_DIR, FIXTURES_ROOT

CONFIGS = Path(__file__).resolve().parents[2] / "index_tts" / "configs"
MANIFESTS = Path(os.environ.get("INDEX_TTS_MANIFESTS", FIXTURES_ROOT / "checkpoint-manifest"))
FIXTURES = FIXTURE_DIR
OFFICIAL = yaml.safe_load((CONFIGS / "indextts2_v2.yaml").read_text(encoding="utf-8"))
BIGVGAN_CONFIG = json.loads((CONFIGS / "bigvgan_v2_22khz_80band_256x.json").read_text(encoding="utf-8"))


def test_manifest_directory_exists():
    assert MANIFESTS.is_dir(), f"checkpoint manifests not found at {MANIFESTS} (set INDEX_TTS_MANIFESTS)"


def manifest(name: str) -> dict[str, tuple[int, ...]]:
    return {key: tuple(shape) for key, shape, _ in json.loads((MANIFESTS / name).read_text())}


def manifest_dtypes(name: str) -> dict[str, str]:
    return {key: dtype for key, _, dtype in json.loads((MANIFESTS / name).read_text())}


def shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


def assert_matches(name: str, ours: dict[str, tuple[int, ...]], unused: set[str], official: dict[str, tuple[int, ...]]):
    """ours ∪ unused == official, by key; and every shape of ours equals the official one."""
    overlap = sorted(unused & set(ours))
    assert not overlap, f"{name}: keys both built and declared unused: {overlap}"
    missing = sorted(set(official) - set(ours) - unused)  # official keys we neither build nor skip
    extra = sorted((set(ours) | unused) - set(official))  # keys we build or skip that are not official
    assert not missing and not extra, f"{name}: missing from our module {missing}; not in the manifest {extra}"
    wrong = [f"{k}: ours {ours[k]} vs official {official[k]}" for k in sorted(ours) if ours[k] != official[k]]
    assert not wrong, f"{name}: shape mismatches: {wrong}"


# ---------------------------------------------------------------------------------------------
# Modules vs manifests


def check_gpt():
    from index_tts.modules.unified_voice import KNOWN_UNUSED, UnifiedVoice, UnifiedVoiceConfig

    with torch.device("meta"):
        model = UnifiedVoice(UnifiedVoiceConfig.from_dict(OFFICIAL["gpt"]))
    assert_matches("gpt.pth", shapes(model), set(KNOWN_UNUSED), manifest("gpt.pth.json"))


def check_s2mel():
    from index_tts.modules.s2mel import KNOWN_UNUSED_KEYS, SUBMODULES, S2Mel, S2MelConfig

    with torch.device("meta"):
        model = S2Mel(S2MelConfig.from_dict(OFFICIAL["s2mel"]))
    ours = {}
    for part in SUBMODULES:
        ours.update(shapes(getattr(model, part), prefix=f"net/{part}/"))
    unused = {"net/" + key.replace(".", "/", 1) for key in KNOWN_UNUSED_KEYS}  # "cfm.a.b" -> "net/cfm/a.b"
    assert_matches("s2mel.pth", ours, unused, manifest("s2mel.pth.json"))


def check_bigvgan():
    from index_tts.modules.bigvgan import BigVGAN, BigVGANConfig

    with torch.device("meta"):  # weight-norm form, as the file stores it
        model = BigVGAN(BigVGANConfig.from_dict(BIGVGAN_CONFIG))
    assert_matches("bigvgan_generator.pt", shapes(model, prefix="generator/"), set(), manifest("bigvgan_generator.pt.json"))


def check_semantic_codec():
    from index_tts.modules.semantic_codec import UNUSED_PREFIXES, RepCodec, SemanticCodecConfig

    official = manifest("semantic_codec_model.safetensors.json")
    with torch.device("meta"):
        model = RepCodec(SemanticCodecConfig.from_dict(OFFICIAL["semantic_codec"]))
    unused = {k for k in official if k.startswith(UNUSED_PREFIXES)}
    assert unused, "the official codec file has decoder keys; the skip list should match some"
    assert_matches("semantic_codec_model.safetensors", shapes(model), unused, official)


def check_campplus():
    from index_tts.modules.campplus import CAMPPlus

    with torch.device("meta"):
        model = CAMPPlus()  # upstream: CAMPPlus(feat_dim=80, embedding_size=192)
    assert_matches("campplus_cn_common.bin", shapes(model), set(), manifest("campplus_cn_common.bin.json"))


def check_w2v_stats():
    from transformers import Wav2Vec2BertConfig

    from index_tts.modules.w2v_bert import W2VBertConfig, W2VBertEncoder

    model = W2VBertEncoder(W2VBertConfig(Wav2Vec2BertConfig().to_dict()))  # built on meta inside
    # The stats are not in the HF checkpoint (non-persistent buffers), so compare them directly.
    ours = {"mean": tuple(model.mean.shape), "var": tuple(model.var.shape)}
    assert_matches("wav2vec2bert_stats.pt", ours, set(), manifest("wav2vec2bert_stats.pt.json"))


def check_w2v_bert():
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    from index_tts.modules.w2v_bert import OUTPUT_LAYER, W2VBertConfig, W2VBertEncoder, is_skipped_key

    hf_config = Wav2Vec2BertConfig()
    with torch.device("meta"):
        reference = shapes(Wav2Vec2BertModel(hf_config))
    ours = shapes(W2VBertEncoder(W2VBertConfig(hf_config.to_dict())))
    unused = {k for k in reference if is_skipped_key(k, OUTPUT_LAYER)}
    assert f"encoder.layers.{hf_config.num_hidden_layers - 1}.ffn2.output_dense.weight" in unused
    assert "encoder.layers.16.ffn2.output_dense.weight" in ours  # layer 17's weights are kept
    assert_matches("w2v_bert/model.safetensors", ours, unused, reference)


CHECKS = {
    "gpt.pth": check_gpt,
    "s2mel.pth": check_s2mel,
    "bigvgan_generator.pt": check_bigvgan,
    "semantic_codec_model.safetensors": check_semantic_codec,
    "campplus_cn_common.bin": check_campplus,
    "wav2vec2bert_stats.pt": check_w2v_stats,
    "w2v_bert": check_w2v_bert,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_module_keys_and_shapes_equal_official_manifest(name):
    CHECKS[name]()


def test_every_manifest_is_checked():
    files = {p.name.removesuffix(".json") for p in MANIFESTS.glob("*.json")} - {"params-summary"}
    assert files == set(CHECKS) - {"w2v_bert"}


def test_assert_matches_names_missing_extra_and_misshaped_keys():
    official = {"a": (2,), "b": (3,), "c": (4,)}
    with pytest.raises(AssertionError, match=r"missing from our module \['c'\]; not in the manifest \['d'\]"):
        assert_matches("x", {"a": (2,), "d": (1,)}, {"b"}, official)
    with pytest.raises(AssertionError, match=r"a: ours \(5,\) vs official \(2,\)"):
        assert_matches("x", {"a": (5,), "c": (4,)}, {"b"}, official)
    assert_matches("x", {"a": (2,), "c": (4,)}, {"b"}, official)


# ---------------------------------------------------------------------------------------------
# make_model_dir plans


PLAN_TO_MANIFEST = {
    "gpt.pth": "gpt.pth.json",
    "s2mel.pth": "s2mel.pth.json",
    "semantic_codec_model.safetensors": "semantic_codec_model.safetensors.json",
    "campplus_cn_common.bin": "campplus_cn_common.bin.json",
    "bigvgan/bigvgan_generator.pt": "bigvgan_generator.pt.json",
    "wav2vec2bert_stats.pt": "wav2vec2bert_stats.pt.json",
}


def official_plans():
    from transformers import Wav2Vec2BertConfig

    from index_tts.tools import make_model_dir as mmd

    plans = {
        "gpt.pth": lambda: mmd.gpt_plan(OFFICIAL),
        "s2mel.pth": lambda: mmd.s2mel_plan(OFFICIAL),
        "semantic_codec_model.safetensors": lambda: mmd.codec_plan(OFFICIAL),
        "campplus_cn_common.bin": mmd.campplus_plan,
        "bigvgan/bigvgan_generator.pt": lambda: mmd.bigvgan_plan(BIGVGAN_CONFIG),
        "wav2vec2bert_stats.pt": lambda: mmd.small_plans(OFFICIAL, Wav2Vec2BertConfig().to_dict())[0],
    }
    return plans


@pytest.mark.parametrize("file_name", list(PLAN_TO_MANIFEST))
def test_make_model_dir_official_plan_writes_the_manifest(file_name):
    plan = official_plans()[file_name]()
    official = manifest(PLAN_TO_MANIFEST[file_name])
    ours = plan.shapes()
    assert_matches(file_name, ours, set(), official)
    dtypes = manifest_dtypes(PLAN_TO_MANIFEST[file_name])
    buffer_dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in plan.buffers.items()}
    wrong = {k: (buffer_dtypes.get(k, "float32"), dtypes[k]) for k in ours if buffer_dtypes.get(k, "float32") != dtypes[k]}
    assert not wrong, f"{file_name}: dtype (ours, official): {wrong}"


def test_make_model_dir_official_feat_matrices_have_73_rows():
    from transformers import Wav2Vec2BertConfig

    from index_tts.tools.make_model_dir import small_plans

    _, spk, emo = small_plans(OFFICIAL, Wav2Vec2BertConfig().to_dict())
    assert spk.shapes() == {"": (73, 192)} and emo.shapes() == {"": (73, 1280)}


@pytest.mark.skipif(not (FIXTURES / "pipeline_same_as_speaker_a.pt").exists(), reason="pipeline fixture not found")
def test_make_model_dir_init_kinds_match_the_fixture_recipe():
    """Plan the pipeline fixture's own config: every recipe key gets the fixture's shape, kind and
    std, every deterministic buffer its value."""
    from index_tts.tools import make_model_dir as mmd

    case = torch.load(FIXTURES / "pipeline_same_as_speaker_a.pt", weights_only=True)
    cfg = case["config"]
    plans = {p.name: p for p in mmd.all_plans(cfg["config.yaml"], cfg["bigvgan/config.json"], cfg["w2v_bert/config.json"])}
    for file_name, weights in case["weights"].items():
        if not (isinstance(weights, dict) and "recipe" in weights):
            continue
        plan = plans[file_name]
        ours = {k: (s, kind, std) for k, s, kind, std in plan.entries}
        theirs = {k: (tuple(s), kind, std) for k, s, kind, std in weights["keys"]}
        assert set(ours) == set(theirs), f"{file_name}: {sorted(set(ours) ^ set(theirs))[:10]}"
        wrong = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        assert not wrong, f"{file_name}: (ours, fixture) {dict(list(wrong.items())[:10])}"
        assert set(plan.buffers) == set(weights["buffers"]), file_name
        for key, value in weights["buffers"].items():
            if value.is_floating_point():  # torch.exp's last bit differs between CPUs' vector paths:
                # the DiT's time-embedding frequencies were 1 ulp off in 5 of 128 on an Intel Xeon
                torch.testing.assert_close(plan.buffers[key], value, rtol=1.2e-7, atol=0, msg=f"{file_name}: buffer {key}")
            else:
                assert torch.equal(plan.buffers[key], value), f"{file_name}: buffer {key}"


def test_make_model_dir_draw_follows_the_recipe_definition():
    from tests.conformance.harness import materialize

    from index_tts.tools.make_model_dir import WeightFile, draw

    rec = {"recipe": "seeded-normal-v1", "seed": 7, "buffers": {},
           "keys": [["a", [3, 4], "normal", 0.5], ["b", [5], "one", 0.1], ["c", [2, 2], "pos", 0.25], ["d", [3], "zero", 0.0]]}
    expected = materialize(rec)
    for i, (key, shape, kind, std) in enumerate(rec["keys"]):
        assert torch.equal(draw(kind, tuple(shape), std, 7 * 1_000_003 + i), expected[key]), key
    f = WeightFile("x.pt")
    f.add("a", (2,), "normal", 0.1)
    assert f.entries[0][3] == float(torch.tensor(0.1, dtype=torch.float32))


def test_make_model_dir_tiny_loads_through_the_engine_and_is_seeded(tmp_path):
    """The `tiny` directory is complete, loads through every real (strict) loader, and the same
    seed gives the same weights while another seed does not."""
    import sentencepiece as spm

    from index_tts.engines.indextts2 import IndexTTS2Engine, missing_files
    from index_tts.tools.make_model_dir import main

    assert main([str(tmp_path / "a"), "--config", "tiny", "--seed", "3"]) == 0
    assert missing_files(tmp_path / "a") == []
    engine = IndexTTS2Engine(tmp_path / "a", device="cpu")
    engine._load_modules(progress=lambda f, s: None, text=False)
    cfg = engine.cfg
    head = engine.gpt.mel_head   # nn.Linear, or the packed KernelLinear the machine's kernel choice made of it
    assert (head.out_features, head.in_features) == (cfg["gpt"]["number_mel_codes"], cfg["gpt"]["model_dim"])

    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "a" / "bpe.model"))
    assert 50 < sp.get_piece_size() <= cfg["gpt"]["number_text_tokens"]
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    assert sp.unk_id() not in sp.encode("HELLO WORLD , 你 好 。")

    from index_tts.tools.make_model_dir import TINY_CONFIG, write_file, small_plans

    stats_a = torch.load(tmp_path / "a" / "wav2vec2bert_stats.pt", weights_only=True)
    stats_plan = small_plans(TINY_CONFIG, {"hidden_size": 1024})[0]
    write_file(stats_plan, tmp_path, seed=3 + 6)  # the stats file is file 6 of the directory
    write_file(stats_plan, tmp_path / "other", seed=4 + 6)
    same = torch.load(tmp_path / "wav2vec2bert_stats.pt", weights_only=True)
    other = torch.load(tmp_path / "other" / "wav2vec2bert_stats.pt", weights_only=True)
    assert torch.equal(same["mean"], stats_a["mean"]) and torch.equal(same["var"], stats_a["var"])
    assert not torch.equal(other["mean"], stats_a["mean"])
    assert (stats_a["var"] > 0).all()
