"""The model store against a local Hub: the real huggingface_hub client, HF_ENDPOINT pointed at
tests/hub_server.py on 127.0.0.1. Download, resume, corruption, revisions, offline starts and a
read-only cache_hub. Nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from index_tts.model_store import doctor
from index_tts.model_store.layout import MAIN_REPO, ModelFiles, load_manifest, open_model_files
from tests.hub_server import HubServer, Repo

ROOT = Path(__file__).resolve().parents[1]
BIG = 24 << 20  # gpt.pth in the dummy set: over huggingface_hub's 10 MiB chunk, so a cut can resume


def cli(*args: str, hub: HubServer | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("INDEX_TTS_", "HF_"))}
    full_env.update(HF_HUB_DISABLE_TELEMETRY="1", HF_TOKEN="test-token", PYTHONUNBUFFERED="1",
                    # huggingface_hub's own small caches (not the model store) stay out of ~/.cache
                    HF_HOME=str(Path(tempfile.gettempdir()) / "index-tts-test-hf-home"))
    if hub is not None:
        full_env["HF_ENDPOINT"] = hub.url
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "index_tts", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def snapshot_dir(cache: Path, repo_id: str) -> Path:
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    commit = (folder / "refs" / "main").read_text().strip()
    return folder / "snapshots" / commit


def repos_from(source: dict[str, Path], extra: dict[str, dict[str, Path]] | None = None) -> dict[str, Repo]:
    """Manifest repos whose files are `source[logical name]`, plus `extra[repo][path]` files."""
    repos = {}
    for r in load_manifest():
        files = {f.path: source[f.logical] for f in r.files if f.logical in source}
        files.update((extra or {}).get(r.id, {}))
        repos[r.id] = Repo(files)
    return repos


@pytest.fixture(scope="module")
def dummy_source(tmp_path_factory) -> dict:
    """Small stand-ins for every manifest file (random bytes; a real config.yaml), plus files the
    download must leave alone (the rest of MaskGCT, w2v-BERT's preprocessor config)."""
    root = tmp_path_factory.mktemp("dummy-repos")
    source, rng = {}, __import__("random").Random(0)
    for r in load_manifest():
        for f in r.files:
            path = root / r.id / f.path
            path.parent.mkdir(parents=True, exist_ok=True)
            if f.path == "config.yaml":
                shutil.copy(ROOT / "index_tts" / "configs" / "indextts2_v2.yaml", path)
            elif f.path.endswith(".json"):
                path.write_text(json.dumps({"repo": r.id, "file": f.path}))
            else:
                path.write_bytes(rng.randbytes(BIG if f.logical == "gpt.pth" else 150_000))
            source[f.logical] = path
    readme, unwanted, preprocessor = root / "README.md", root / "acoustic.safetensors", root / "preprocessor_config.json"
    readme.write_text("# model card\n")
    unwanted.write_bytes(rng.randbytes(300_000))
    preprocessor.write_text("{}")
    extra = {MAIN_REPO: {"README.md": readme}, "amphion/MaskGCT": {"acoustic_codec/model.safetensors": unwanted},
             "facebook/w2v-bert-2.0": {"preprocessor_config.json": preprocessor}}
    return {"source": source, "extra": extra}


@pytest.fixture
def hub(dummy_source):
    with HubServer(repos_from(dummy_source["source"], dummy_source["extra"])) as server:
        yield server


def resolve_gets(hub: HubServer) -> list[str]:
    return [p for m, p, _, _ in hub.requests if m == "GET" and "/resolve/" in p]


# ---------------------------------------------------------------------------------------------
# download


def test_dry_run_lists_files_and_total_without_fetching(hub, tmp_path):
    cache = tmp_path / "cache_hub"
    result = cli("download", "--dry-run", "--cache-hub", str(cache), hub=hub)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gpt.pth" in result.stdout and "semantic_codec/model.safetensors" in result.stdout
    assert "acoustic_codec" not in result.stdout and "preprocessor_config.json" not in result.stdout
    wanted = [*hub_sources(hub).values(), hub.repos[MAIN_REPO].files["README.md"]]  # 14 manifest files + README.md
    assert f"To fetch: 15 files, {sum(p.stat().st_size for p in wanted) / 1e6:.1f} MB." in result.stdout
    assert resolve_gets(hub) == [] and not cache.exists()


def test_full_download_with_progress_into_a_hub_cache(hub, tmp_path):
    from huggingface_hub import scan_cache_dir

    cache = tmp_path / "cache_hub"
    result = cli("download", "--cache-hub", str(cache), hub=hub)
    assert result.returncode == 0, result.stdout + result.stderr
    # A bar per file (huggingface_hub's) and one for the total, both reaching 100%.
    assert "gpt.pth: 100%" in result.stderr and "campplus_cn_common.bin: 100%" in result.stderr
    assert "total: 100%" in result.stderr
    # The standard layout, readable by huggingface_hub's own cache tools.
    info = scan_cache_dir(cache)
    assert info.warnings == []
    assert {r.repo_id for r in info.repos} == {r.id for r in load_manifest()}
    assert (snapshot_dir(cache, "amphion/MaskGCT") / "semantic_codec" / "model.safetensors").is_file()
    assert not (snapshot_dir(cache, "amphion/MaskGCT") / "acoustic_codec").exists()  # only what inference needs
    assert (snapshot_dir(cache, MAIN_REPO) / "README.md").is_file()                  # IndexTTS-2: every file
    # Byte-identical, and the engine finds every file through the layout.
    files = ModelFiles.hub(cache)
    for name, source in hub_sources(hub).items():
        assert files.path(name).read_bytes() == source.read_bytes(), name
    from index_tts.engines.model_files import missing_files

    assert missing_files(files) == []
    assert all(auth == "Bearer test-token" for m, p, _, auth in hub.requests if "/resolve/" in p)  # HF_TOKEN is sent
    doctor = cli("doctor", "--cache-hub", str(cache), "--verify")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "sha256 ok" in doctor.stdout and "IndexTTS2 set: complete" in doctor.stdout


def hub_sources(hub: HubServer) -> dict[str, Path]:
    """logical name -> served file, for the manifest files."""
    out = {}
    for r in load_manifest():
        for f in r.files:
            if f.path in hub.repos[r.id].files:
                out[f.logical] = hub.repos[r.id].files[f.path]
    return out


def test_a_dropped_connection_resumes_with_a_range_request(hub, tmp_path):
    cache = tmp_path / "cache_hub"
    hub.cut_once["gpt.pth"] = 15 << 20  # the server hangs up 15 MiB into the 24 MiB file, once
    result = cli("download", "--cache-hub", str(cache), hub=hub)
    assert result.returncode == 0, result.stdout + result.stderr
    gpt_gets = [(r, p) for m, p, r, _ in hub.requests if m == "GET" and p.endswith("/gpt.pth")]
    assert len(gpt_gets) == 2
    assert gpt_gets[1][0].startswith("bytes=") and int(gpt_gets[1][0][6:].rstrip("-")) >= 10 << 20  # resumed, not restarted
    served = hub_sources(hub)["gpt.pth"]
    assert hashlib.sha256((snapshot_dir(cache, MAIN_REPO) / "gpt.pth").read_bytes()).hexdigest() == \
        hashlib.sha256(served.read_bytes()).hexdigest()


def test_a_stopped_run_keeps_finished_files_and_the_next_fetches_the_rest(hub, tmp_path):
    from index_tts.engines.model_files import missing_files

    cache = tmp_path / "cache_hub"
    hub.deny = {"bigvgan_generator.pt"}  # listed, but the file itself fails (404)
    first = cli("download", "--cache-hub", str(cache), hub=hub)
    assert first.returncode == 1
    assert "nvidia/bigvgan_v2_22khz_80band_256x: bigvgan_generator.pt" in first.stdout
    # That repo's revision is not pointed at a half snapshot; the repos before it are complete.
    assert not (cache / "models--nvidia--bigvgan_v2_22khz_80band_256x" / "refs" / "main").exists()
    assert missing_files(ModelFiles.hub(cache)) == ["bigvgan/config.json", "bigvgan/bigvgan_generator.pt"]

    hub.deny = set()
    hub.requests.clear()
    second = cli("download", "--cache-hub", str(cache), hub=hub)
    assert second.returncode == 0, second.stdout + second.stderr
    # Only that repo's files travel again; the four finished repos are kept.
    assert resolve_gets(hub) and all("/nvidia/bigvgan_v2_22khz_80band_256x/" in p for p in resolve_gets(hub))
    assert missing_files(ModelFiles.hub(cache)) == []


def test_a_truncated_or_corrupted_file_is_detected_and_fetched_again(hub, tmp_path):
    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    gpt = snapshot_dir(cache, MAIN_REPO) / "gpt.pth"
    good = gpt.read_bytes()
    with open(gpt.resolve(), "r+b") as f:  # the blob behind the snapshot link
        f.truncate(len(good) // 2)

    doctor = cli("doctor", "--cache-hub", str(cache))
    assert doctor.returncode == 1
    assert "wrong size" in doctor.stdout and "IndexTeam/IndexTTS-2: gpt.pth" in doctor.stdout
    assert "python -m index_tts download" in doctor.stdout  # the fix is named

    hub.requests.clear()
    fixed = cli("download", "--cache-hub", str(cache), hub=hub)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "gpt.pth: re-fetch" in fixed.stdout
    assert [p.rsplit("/", 1)[1] for p in resolve_gets(hub)] == ["gpt.pth"]
    assert gpt.read_bytes() == good

    # Same size, one byte flipped: only hashing sees it.
    with open(gpt.resolve(), "r+b") as f:
        f.seek(1234)
        byte = f.read(1)
        f.seek(1234)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert cli("doctor", "--cache-hub", str(cache)).returncode == 0
    verify = cli("doctor", "--cache-hub", str(cache), "--verify")
    assert verify.returncode == 1 and "hash mismatch" in verify.stdout and "gpt.pth" in verify.stdout
    assert cli("download", "--verify", "--cache-hub", str(cache), hub=hub).returncode == 0
    assert gpt.read_bytes() == good
    assert cli("doctor", "--cache-hub", str(cache), "--verify").returncode == 0


def test_if_missing_uses_no_network_once_complete(hub, tmp_path):
    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    hub.requests.clear()
    again = cli("download", "--if-missing", "--cache-hub", str(cache), hub=hub)
    assert again.returncode == 0 and "nothing to fetch" in again.stdout
    assert hub.requests == []
    # Without --if-missing it asks the server (listings only) and fetches nothing.
    checked = cli("download", "--cache-hub", str(cache), hub=hub)
    assert checked.returncode == 0 and "Nothing to fetch" in checked.stdout
    assert resolve_gets(hub) == [] and hub.count("GET", "/api/models/") == 5


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    result = cli("download", "--cache-hub", str(tmp_path / "cache_hub"), env={"HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert result.returncode == 3
    assert "cannot reach" in result.stdout and "HF_ENDPOINT" in result.stdout and "IndexTeam/IndexTTS-2" in result.stdout


def test_requests_go_through_the_https_proxy_variables(dummy_source, tmp_path):
    """The endpoint is a name that does not resolve; only the proxy (a second local Hub that
    answers proxy-style absolute URLs) can serve it."""
    with HubServer(repos_from(dummy_source["source"], dummy_source["extra"])) as proxy:
        env = {"HF_ENDPOINT": "http://hub.invalid", "HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
        result = cli("download", "--dry-run", "--cache-hub", str(tmp_path / "cache_hub"), env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "To fetch: 15 files" in result.stdout
        assert proxy.count("GET", "/api/models/IndexTeam/IndexTTS-2") == 1


def test_revisions_sit_side_by_side(hub, dummy_source, tmp_path):
    from index_tts.service import Status
    from index_tts.ui.app import render_banner

    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    main_commit = (cache / "models--IndexTeam--IndexTTS-2" / "refs" / "main").read_text()
    # A second server state: IndexTTS-2 gains a tag v2.1 at another commit, with another config.
    new_config = tmp_path / "config-v2.1.yaml"
    new_config.write_text(dummy_source["source"]["config.yaml"].read_text() + "\n# v2.1\n")
    repo = hub.repos[MAIN_REPO]
    tagged = Repo(files={**repo.files, "config.yaml": new_config}, commit="b" * 40, revisions={"v2.1": "b" * 40, "main": repo.commit})
    hub.repos[MAIN_REPO] = tagged
    assert cli("download", "--revision", "v2.1", "--cache-hub", str(cache), hub=hub).returncode == 0

    main, v21 = ModelFiles.hub(cache), ModelFiles.hub(cache, "v2.1")
    assert (main / "config.yaml").read_text() != (v21 / "config.yaml").read_text()
    assert (cache / "models--IndexTeam--IndexTTS-2" / "refs" / "main").read_text() == main_commit
    assert v21.revision.startswith("v2.1 (bbbbbbbbbb") and main.revision.startswith("main (")
    status = Status(state="ready", progress=1.0, message="ready", engine="IndexTTS2", device="cpu", version="2.0",
                    is_quick_voice=False, selection_reason="", model_store={"revision": v21.revision})
    assert "IndexTeam/IndexTTS-2 @ v2.1 (bbbbbbbbbb)" in render_banner(status, "en")
    status = Status(state="ready", progress=1.0, message="ready", engine="IndexTTS2", device="cpu", version="2.0",
                    is_quick_voice=False, selection_reason="", model_store={"warnings": ["cache_hub is on a fuse filesystem"]})
    assert "fuse filesystem" in render_banner(status, "zh")


def test_copy_local_stages_a_flat_folder_that_loads_the_same_files(hub, tmp_path):
    from index_tts.engines.model_files import missing_files

    cache, local = tmp_path / "cache_hub", tmp_path / "local" / "IndexTTS-2"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    copied = cli("doctor", "--cache-hub", str(cache), "--copy-local", str(local))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert f"--model-dir {local}" in copied.stdout
    hub_files = ModelFiles.hub(cache)
    assert missing_files(local) == []
    for name, _ in hub_sources(hub).items():
        assert (local / name).read_bytes() == hub_files.path(name).read_bytes(), name
    assert not any(p.name.endswith((".partial", ".tmp")) for p in local.rglob("*"))
    # A flat folder has no record to compare with: --verify prints each hash instead.
    flat = cli("doctor", "--model-dir", str(local), "--verify")
    assert flat.returncode == 0 and "no reference to compare" in flat.stdout


def test_doctor_names_the_mount_and_warns_when_reads_are_slow(hub, tmp_path, monkeypatch):
    from index_tts.model_store import doctor

    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    mount = doctor.find_mount(cache)
    assert mount is not None and str(cache.resolve()).startswith(mount.mountpoint) and mount.kind in ("local", "network", "fuse")
    report = doctor.inspect(ModelFiles.hub(cache), measure=True)
    assert report.complete and report.throughput_mb_s > 0 and report.free_bytes > 0
    monkeypatch.setattr(doctor, "measure_throughput", lambda path: 42.0)  # what an rclone mount over a slow link reads at
    slow = doctor.inspect(ModelFiles.hub(cache), measure=True)
    assert any("42 MB/s" in w and "--copy-local" in w for w in slow.warnings)


# ---------------------------------------------------------------------------------------------
# starting without all the files


def test_incomplete_cache_runs_the_quick_voice_with_a_banner_naming_what_is_missing(hub, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from index_tts.api import make_router
    from index_tts.engines import select_engine
    from index_tts.model_store.doctor import inspect
    from index_tts.service import SynthesisRequest, Synthesizer
    from index_tts.ui.app import render_banner

    cache = tmp_path / "cache_hub"
    hub.deny = {"bigvgan_generator.pt"}  # the network "fails" for one file
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 1
    hub.requests.clear()

    files = open_model_files(cache_hub=cache)
    store = inspect(files)
    factory, reason = select_engine("auto", files)
    synth = Synthesizer(factory, data_dir=tmp_path / "data", selection_reason=reason, model_store=store.as_dict()).start()
    assert synth.wait_until_loaded(120) == "ready"
    status = synth.status()
    assert status.is_quick_voice
    wanted = "nvidia/bigvgan_v2_22khz_80band_256x: bigvgan_generator.pt"
    for text in (status.help, render_banner(status, "en")):
        assert wanted in text and "python -m index_tts download" in text
    app = FastAPI()
    app.include_router(make_router(lambda: synth))
    ready = TestClient(app).get("/readyz").json()
    assert ready["quick_voice"] is True and any(wanted in m for m in ready["model_store"]["missing"])

    voice = tmp_path / "voice.wav"
    import numpy as np
    import soundfile as sf

    t = np.arange(16000) / 16000
    sf.write(voice, 0.3 * np.sin(2 * np.pi * 180 * t), 16000)
    result = synth.synthesize(SynthesisRequest(text="Hello there.", voice=str(voice)))
    assert result.engine != "IndexTTS2" and result.duration_s > 0.2
    assert hub.requests == []  # none of this touched the network


def test_damaged_weights_fail_the_load_with_the_command_that_finds_them(hub, tmp_path):
    from index_tts.engines import select_engine
    from index_tts.service import Synthesizer
    from index_tts.ui.app import render_banner

    cache = tmp_path / "cache_hub"
    assert cli("download", "--cache-hub", str(cache), hub=hub).returncode == 0
    factory, _ = select_engine("auto", ModelFiles.hub(cache))  # every file is there, but they are random bytes
    synth = Synthesizer(factory, data_dir=tmp_path / "data").start()
    assert synth.wait_until_loaded(300) == "failed"
    banner = render_banner(synth.status(), "en")
    assert "python -m index_tts doctor --verify" in banner and "download --verify" in banner


# ---------------------------------------------------------------------------------------------
# the real app on the tiny model: offline, and from a read-only cache_hub


def tree_state(root: Path) -> dict[str, tuple]:
    return {p.relative_to(root).as_posix(): (p.is_symlink(), p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def tiny_hub_cache(tiny_model_dir, tmp_path_factory):
    """The tiny model, served as the five repos and downloaded into a hub cache (once)."""
    source = {p.relative_to(tiny_model_dir).as_posix(): p for p in tiny_model_dir.rglob("*") if p.is_file()}
    cache = tmp_path_factory.mktemp("tiny-hub") / "cache_hub"
    with HubServer(repos_from(source)) as server:
        result = cli("download", "--cache-hub", str(cache), hub=server, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
    return cache


@pytest.fixture(scope="module")
def offline_app(tiny_hub_cache, tmp_path_factory):
    """webui.py on the tiny model's hub cache, made read-only; HF_ENDPOINT points at a live local
    Hub that records every request."""
    tmp = tmp_path_factory.mktemp("offline-app")
    before = tree_state(tiny_hub_cache)
    for p in [tiny_hub_cache, *tiny_hub_cache.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with HubServer({}) as watcher:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INDEX_TTS_", "HF_"))}
        env.update(HF_ENDPOINT=watcher.url, HF_HOME=str(tmp / "hf-home"), PYTHONUNBUFFERED="1")
        log = (tmp / "webui.log").open("wb")
        proc = subprocess.Popen([sys.executable, "webui.py", "--port", str(port), "--data-dir", str(tmp / "data"),
                                 "--engine", "auto", "--cache-hub", str(tiny_hub_cache)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready, deadline = None, time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                        ready = json.loads(r.read())
                        break
                except OSError:
                    time.sleep(1)
            assert ready is not None, (tmp / "webui.log").read_text()
            yield {"ready": ready, "requests": list(watcher.requests), "before": before, "cache": tiny_hub_cache}
        finally:
            proc.kill()
            proc.wait(timeout=30)
            for p in [tiny_hub_cache, *tiny_hub_cache.rglob("*")]:
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_offline_start_with_a_complete_cache_runs_indextts2_without_the_network(offline_app):
    ready = offline_app["ready"]
    assert ready["state"] == "ready" and ready["engine"] == "IndexTTS2" and ready["quick_voice"] is False
    assert ready["model_store"]["complete"] is True and ready["model_store"]["revision"].startswith("main (")
    assert offline_app["requests"] == []  # HF_HUB_OFFLINE=1: not one request reached the Hub


def test_a_read_only_cache_hub_loads_and_is_left_untouched(offline_app):
    cache = offline_app["cache"]
    assert stat.S_IMODE(cache.stat().st_mode) & 0o222 == 0
    # Root ignores mode bits, so compare the tree itself: no new lock, file or changed time.
    assert tree_state(cache) == offline_app["before"]


# ---------------------------------------------------------------------------------------------
# the launcher


def test_launcher_fetches_weights_on_first_start_unless_no_download(hub, tmp_path):
    from tests.test_start_app import Launcher, assert_ok

    launcher = Launcher(tmp_path)
    cache = tmp_path / "cache_hub"
    launcher.env = {k: v for k, v in launcher.env.items() if not k.startswith("HF_")}
    launcher.env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), INDEX_TTS_CACHE_HUB=str(cache))
    try:
        skipped = launcher("start", "--no-download", engine="auto")
        assert_ok(skipped)
        assert hub.requests == [] and not cache.exists()
        ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{launcher.port}/readyz", timeout=10).read())
        assert ready["quick_voice"] is True and ready["model_store"]["complete"] is False
        assert "No IndexTTS2 weights" in ready["model_store"]["fix"]  # a fresh install: one short sentence
        assert "python -m index_tts download" in ready["model_store"]["fix"]

        fetched = launcher("start", engine="auto")  # replaces the first instance
        assert_ok(fetched)
        assert "Done: 15 files" in fetched.stdout
        from index_tts.engines.model_files import missing_files

        assert missing_files(ModelFiles.hub(cache)) == []
    finally:
        launcher.cleanup()


def test_read_ahead_reads_a_file_once_front_to_back(tmp_path, monkeypatch):
    from index_tts.model_store import readahead

    data = np.random.default_rng(0).integers(0, 256, 5 * 2**20 + 123, dtype=np.uint8).tobytes()
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    offsets = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def readinto(self, buffer):
            offsets.append(self.f.tell())
            return self.f.readinto(buffer)

    monkeypatch.setattr(readahead, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    assert readahead.read_ahead(path, chunk=2**20) == len(data)
    # 6 chunk reads in file order, then the empty read at the end of the file
    assert offsets == [i * 2**20 for i in range(6)] + [len(data)]

    monkeypatch.setenv(readahead.ENV, "0")
    assert not readahead.wanted(path)
    monkeypatch.setenv(readahead.ENV, "1")
    assert readahead.wanted(path)
    monkeypatch.delenv(readahead.ENV)
    monkeypatch.setattr(readahead, "find_mount", lambda p: doctor.Mount("/mnt/s3", "fuse.rclone", "fuse"))
    assert readahead.wanted(path)
    monkeypatch.setattr(readahead, "find_mount", lambda p: doctor.Mount("/", "ext4", "local"))
    assert not readahead.wanted(path)


def test_loading_from_a_mount_reads_each_weight_file_ahead_once_in_load_order(tiny_model_dir, monkeypatch):
    from index_tts.engines.indextts2 import IndexTTS2Engine
    from index_tts.model_store import readahead

    seen = []
    monkeypatch.setenv(readahead.ENV, "1")  # as on an rclone mount
    monkeypatch.setattr(readahead, "read_ahead", lambda path: seen.append(Path(path).relative_to(tiny_model_dir).as_posix()))
    IndexTTS2Engine.load(tiny_model_dir, device="cpu")
    assert seen == ["gpt.pth", "s2mel.pth", "w2v_bert/model.safetensors", "semantic_codec_model.safetensors",
                    "campplus_cn_common.bin", "bigvgan/bigvgan_generator.pt"]
