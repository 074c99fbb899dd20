"""IndexTTS-2.5 in the model store, against the local Hub (tests/hub_server.py): `download --model
2.5` fetches its own repo and the shared ones, the shared snapshots serve both models (fetched
once), and `doctor` reports both sets."""

from __future__ import annotations

import json
import shutil

import pytest

from index_tts.engines.indextts2 import missing_files  # the engine contract re-exports it
from index_tts.model_store.layout import MAIN_REPOS, ModelFiles, load_manifest
from tests.hub_server import HubServer, Repo
from tests.test_model_store import ROOT, cli, resolve_gets, snapshot_dir

REPO_25 = MAIN_REPOS["2.5"]
SHARED = {r.id for r in load_manifest("2")} & {r.id for r in load_manifest("2.5")}


@pytest.fixture(scope="module")
def both_source(tmp_path_factory) -> dict[str, dict]:
    """repo id -> {path in repo: small stand-in file}, for every repo of both models."""
    root, rng = tmp_path_factory.mktemp("dummy-repos-25"), __import__("random").Random(25)
    configs = {MAIN_REPOS["2"]: "indextts2_v2.yaml", REPO_25: "indextts25.yaml"}
    out = {}
    for r in load_manifest("both"):
        out[r.id] = {}
        for f in r.files:
            path = root / r.id / f.path
            path.parent.mkdir(parents=True, exist_ok=True)
            if f.path == "config.yaml":
                shutil.copy(ROOT / "index_tts" / "configs" / configs[r.id], path)
            elif f.path.endswith(".json"):
                path.write_text(json.dumps({"repo": r.id, "file": f.path}))
            else:
                path.write_bytes(rng.randbytes(120_000))
            out[r.id][f.path] = path
    return out


@pytest.fixture
def hub(both_source):
    with HubServer({rid: Repo(dict(files)) for rid, files in both_source.items()}) as server:
        yield server


def test_manifest_routes_each_model_to_its_repos():
    ids = lambda model: [r.id for r in load_manifest(model)]  # noqa: E731
    assert REPO_25 in ids("2.5") and MAIN_REPOS["2"] not in ids("2.5") and "amphion/MaskGCT" not in ids("2.5")
    assert REPO_25 not in ids("2")
    assert SHARED == {"facebook/w2v-bert-2.0", "funasr/campplus", "nvidia/bigvgan_v2_22khz_80band_256x"}
    assert set(ids("both")) == set(ids("2")) | set(ids("2.5"))
    with pytest.raises(ValueError, match="model must be one of"):
        load_manifest("3")


def test_download_25_fetches_its_repo_and_the_shared_ones(hub, both_source, tmp_path):
    cache = tmp_path / "cache_hub"
    result = cli("download", "--model", "2.5", "--cache-hub", str(cache), hub=hub)
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = {p.split("/resolve/")[0].strip("/").removeprefix("api/models/") for p in resolve_gets(hub)}
    assert fetched == {REPO_25, *SHARED}  # not IndexTTS-2, not MaskGCT
    files = ModelFiles.hub(cache, model="2.5")
    assert missing_files(files, "2.5") == []
    for r in load_manifest("2.5"):
        for f in r.files:
            if f.required:
                assert files.path(f.logical).read_bytes() == both_source[r.id][f.path].read_bytes(), f.logical
    doctor = cli("doctor", "--model", "2.5", "--cache-hub", str(cache))
    assert doctor.returncode == 0 and "IndexTTS-2.5 set: complete" in doctor.stdout, doctor.stdout


def test_shared_files_are_fetched_once_for_both_models(hub, tmp_path):
    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0       # IndexTTS2 first
    before = len(resolve_gets(hub))
    dry = cli("download", "--model", "2.5", "--dry-run", "--cache-hub", str(cache), hub=hub)
    assert dry.returncode == 0 and f"To fetch: {len(load_manifest('2.5')[0].files)} files" in dry.stdout, dry.stdout
    assert cli("download", "--model", "2.5", "--cache-hub", str(cache), hub=hub).returncode == 0
    new = resolve_gets(hub)[before:]
    assert new and all(REPO_25 in p for p in new), new
    # One snapshot of each shared repo, read by both models.
    v2, v25 = ModelFiles.hub(cache, model="2"), ModelFiles.hub(cache, model="2.5")
    for name in ("w2v_bert/model.safetensors", "campplus_cn_common.bin", "bigvgan/bigvgan_generator.pt"):
        assert v2.path(name) == v25.path(name) and v2.path(name).is_file(), name
    assert v2.path("gpt.pth").parent == snapshot_dir(cache, MAIN_REPOS["2"])
    assert v25.path("gpt.pth").parent == snapshot_dir(cache, REPO_25)
    # --if-missing: both complete, nothing fetched, no network.
    quiet = cli("download", "--model", "both", "--if-missing", "--cache-hub", str(cache), hub=hub)
    assert quiet.returncode == 0 and "nothing to fetch" in quiet.stdout


def test_doctor_reports_both_models(hub, tmp_path):
    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    text = cli("doctor", "--cache-hub", str(cache))
    assert text.returncode == 0  # IndexTTS2, the default model, is complete
    assert "IndexTTS2 set: complete" in text.stdout
    assert "IndexTTS-2.5 set: INCOMPLETE" in text.stdout and "download --model 2.5" in text.stdout
    report = json.loads(cli("doctor", "--json", "--cache-hub", str(cache)).stdout)
    assert report["complete"] is True and report["models"]["2.5"]["complete"] is False
    assert any("IndexTeam/IndexTTS-2.5: codec.pth" in m for m in report["models"]["2.5"]["missing"])
    assert cli("doctor", "--model", "2.5", "--cache-hub", str(cache)).returncode == 1
