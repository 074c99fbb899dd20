"""History entries: deleting removes every file an entry alone used; retention by count and by size;
clean-up at start; the webui flags and Gradio's temp folder in the data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import webui
from index_tts.storage import DataDir, HistoryStore, Retention
from index_tts.storage.history import MAX_ENTRIES_ENV, MAX_GB_ENV

ROOT = Path(__file__).resolve().parents[1]
PLENTY = Retention(10_000, 10**12)


def make_store(tmp_path, retention=PLENTY) -> HistoryStore:
    data = DataDir(tmp_path / "data").ensure()
    return HistoryStore(data.history, data.outputs, retention)


def add_entry(store: HistoryStore, n: int, voice: str = "aa", audio_bytes: int = 100, emotion_voice: str | None = None,
              side=(".srt",)) -> str:
    """Entry number n (ids sort by n, as real ids sort by time), made with voice copy `voice`."""
    audio = store.outputs / f"20260101T0000{n:02d}_000000Z_{n:04x}.wav"
    audio.write_bytes(b"a" * audio_bytes)
    entry_id = audio.name.split(".")[0]
    for suffix in side:
        store.side_file(entry_id, suffix).write_bytes(b"side")
    request = {"text": "hi", "voice": store.keep_voice(voice, b"v" * 10)}
    if emotion_voice:
        request["emotion"] = {"mode": "audio", "audio": store.keep_voice(emotion_voice, b"e" * 10)}
    store.add(audio, {"kind": "speech", "request": request})
    return entry_id


def files(store: HistoryStore) -> set[str]:
    found = {f"outputs/{p.name}" for p in store.outputs.iterdir()}
    found |= {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()}
    return found


def test_delete_removes_every_file_the_entry_alone_used(tmp_path):
    store = make_store(tmp_path)
    first = add_entry(store, 1, voice="aa", emotion_voice="ee", side=(".srt", ".lines.zip"))
    second = add_entry(store, 2, voice="aa")
    assert files(store) == {f"outputs/{first}.wav", f"{first}.json", f"{first}.srt", f"{first}.lines.zip",
                            f"outputs/{second}.wav", f"{second}.json", f"{second}.srt", "voices/aa.wav", "voices/ee.wav"}
    assert store.delete(first) is True
    # The emotion clip was first's alone; the voice is still the second entry's.
    assert files(store) == {f"outputs/{second}.wav", f"{second}.json", f"{second}.srt", "voices/aa.wav"}
    assert store.voice_file("aa.wav").is_file()
    assert store.delete(first) is False
    assert store.delete(second) is True
    assert files(store) == set()


def test_delete_of_an_unreadable_record_still_removes_its_files(tmp_path):
    store = make_store(tmp_path)
    entry = add_entry(store, 1, voice="aa")
    (store.root / f"{entry}.json").write_text("{half a rec")
    assert store.delete(entry) is True
    # The audio shares the entry's id; only the voice copy's name was in the broken record.
    assert files(store) == {"voices/aa.wav"}
    assert store.remove_orphans() == [store.voice_dir / "aa.wav"]  # at the next start


def test_retention_by_count_removes_the_oldest_first(tmp_path):
    store = make_store(tmp_path, Retention(max_entries=3, max_bytes=10**9))
    ids = [add_entry(store, n, voice="cafe" if n in (0, 4) else f"{n:02x}") for n in range(5)]
    assert [r["id"] for r in store.list()] == ids[:1:-1]
    # Entry 0 is gone but the voice it shared with entry 4 stays; entry 1's voice went with it.
    assert {p.name for p in store.voice_dir.iterdir()} == {"cafe.wav", "02.wav", "03.wav"}
    assert sorted(p.name for p in store.outputs.iterdir()) == [f"{i}.wav" for i in ids[2:]]
    assert store.usage()[0] == 3


def test_retention_by_size_counts_shared_voices_once(tmp_path):
    store = make_store(tmp_path, Retention(max_entries=100, max_bytes=250_000))
    ids = [add_entry(store, n, voice="aa", audio_bytes=100_000) for n in range(4)]
    assert [r["id"] for r in store.list()] == ids[:1:-1]  # two of 100 kB fit, a third would not
    entries, used = store.usage()
    assert entries == 2 and 200_000 < used <= 250_000
    assert (store.voice_dir / "aa.wav").is_file()


def test_the_newest_entry_stays_even_when_it_alone_is_over_the_limit(tmp_path):
    store = make_store(tmp_path, Retention(max_entries=5, max_bytes=1000))
    add_entry(store, 1, audio_bytes=10)
    newest = add_entry(store, 2, audio_bytes=5000)
    assert [r["id"] for r in store.list()] == [newest]


def test_outputs_without_a_record_are_neither_counted_nor_removed(tmp_path):
    store = make_store(tmp_path, Retention(max_entries=2, max_bytes=2000))
    legacy = store.outputs / "from_before_history.wav"
    legacy.write_bytes(b"x" * 10_000)
    ids = [add_entry(store, n, audio_bytes=50) for n in range(3)]
    assert legacy.is_file()
    assert [r["id"] for r in store.list()] == ids[:0:-1]


def test_a_voice_kept_for_a_record_not_yet_written_survives_deletes(tmp_path):
    store = make_store(tmp_path)
    old = add_entry(store, 1, voice="aa")
    name = store.keep_voice("aa", b"v")  # a request in flight reuses the copy...
    store.delete(old)                    # ...while the only entry naming it is deleted
    assert (store.voice_dir / name).is_file()
    audio = store.outputs / "20260101T000009_000000Z_0009.wav"
    audio.write_bytes(b"a")
    store.add(audio, {"request": {"voice": name}})
    assert store.voice_file(name).is_file()
    store.delete("20260101T000009_000000Z_0009")
    assert not (store.voice_dir / name).exists()  # once written and deleted, it goes


def test_a_failing_clean_up_does_not_fail_the_new_entry(tmp_path, monkeypatch):
    store = make_store(tmp_path, Retention(max_entries=1, max_bytes=10**9))
    add_entry(store, 1)

    def broken(self, keep=None):
        raise PermissionError("read-only history")

    monkeypatch.setattr(HistoryStore, "prune", broken)
    newest = add_entry(store, 2)
    assert store.get(newest)["id"] == newest


def test_start_up_removes_crash_leftovers_and_orphans_only(tmp_path):
    data = DataDir(tmp_path / "data").ensure()
    store = HistoryStore(data.history, data.outputs, PLENTY)
    entry = add_entry(store, 1, voice="aa")
    kept = files(store) | {"notes.txt"}
    orphans = [data.history / "voices" / "bb.wav",                      # kept, then the request failed
               data.history / "20260101T000002_000000Z_0002.srt",       # written just before a crash
               data.history / f".{entry}.json.k1ll.tmp",
               data.root / ".glossary.json.x1y2.tmp",
               data.presets / ".deleted-old-1234" / "preset.json"]
    for path in orphans:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (data.history / "notes.txt").write_bytes(b"not ours to judge")
    removed = data.remove_crash_leftovers()
    assert {p.relative_to(data.root) for p in removed} == {p.relative_to(data.root) for p in orphans[:-1]} | {
        Path("presets/.deleted-old-1234")}
    assert files(store) == kept
    assert list(data.presets.iterdir()) == []


def test_retention_comes_from_the_environment_and_refuses_nonsense(monkeypatch):
    monkeypatch.delenv(MAX_ENTRIES_ENV, raising=False)
    monkeypatch.delenv(MAX_GB_ENV, raising=False)
    assert Retention.from_env() == Retention(500, 5 * 10**9)
    monkeypatch.setenv(MAX_ENTRIES_ENV, "20")
    monkeypatch.setenv(MAX_GB_ENV, "0.5")
    assert Retention.from_env() == Retention(20, 5 * 10**8)
    monkeypatch.setenv(MAX_GB_ENV, "nan")
    with pytest.raises(ValueError, match=MAX_GB_ENV):
        Retention.from_env()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="entries"):
            Retention(bad, 100)
    with pytest.raises(ValueError, match="size"):
        Retention(5, 0)


def test_the_service_keeps_history_within_the_limits(tmp_path, monkeypatch):
    from index_tts.service import Synthesizer, SynthesisRequest
    from tests.test_creator_service import RecordingEngine, voice

    monkeypatch.setenv(MAX_ENTRIES_ENV, "2")
    engine = RecordingEngine()
    synth = Synthesizer(lambda progress: engine, data_dir=tmp_path).start()
    assert synth.wait_until_loaded(10) == "ready"
    results = [synth.synthesize(SynthesisRequest(text=f"Take {n}.", voice=voice(100.0 + 20 * n))) for n in range(3)]
    assert [r["id"] for r in synth.history.list()] == [results[2].history_id, results[1].history_id]
    assert not results[0].path.exists() and not results[0].srt_path.exists()
    assert sorted(p.name for p in synth.data.outputs.iterdir()) == sorted(r.path.name for r in results[1:])
    assert len(list((synth.data.history / "voices").iterdir())) == 2  # the first take's voice went with it
    assert synth.request_from_history(results[1].history_id).text == "Take 1."


# ---------------------------------------------------------------------------------------------
# webui.py


def test_history_flags_parse_with_env_defaults_and_refuse_nonsense(monkeypatch, capsys):
    monkeypatch.delenv(MAX_ENTRIES_ENV, raising=False)
    monkeypatch.delenv(MAX_GB_ENV, raising=False)
    args = webui.parse_args([])
    assert (args.history_max_entries, args.history_max_gb) == (500, 5.0)
    monkeypatch.setenv(MAX_ENTRIES_ENV, "7")
    assert webui.parse_args(["--history-max-gb", "0.25"]).history_max_entries == 7
    for argv, flag in ((["--history-max-entries", "0"], "--history-max-entries"),
                       (["--history-max-gb", "inf"], "--history-max-gb"),
                       (["--history-max-gb", "-1"], "--history-max-gb")):
        with pytest.raises(SystemExit):
            webui.parse_args(argv)
        assert flag in capsys.readouterr().err


def test_start_up_puts_gradio_temp_in_the_data_folder_and_empties_it(tmp_path, monkeypatch):
    for name in ("GRADIO_TEMP_DIR", MAX_ENTRIES_ENV, MAX_GB_ENV):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores them after the test
    stale = tmp_path / "data" / "tmp" / "gradio" / "0123abcd" / "upload.wav"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"RIFF")
    webui.use_data_folder(webui.parse_args(["--data-dir", str(tmp_path / "data"), "--history-max-entries", "9",
                                            "--history-max-gb", "1.5"]))
    folder = Path(os.environ["GRADIO_TEMP_DIR"])
    assert folder == (tmp_path / "data" / "tmp" / "gradio").resolve()
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_the_history_flags_reach_the_store(tmp_path):
    from index_tts.service import Synthesizer

    synth = Synthesizer(lambda: None, data_dir=tmp_path / "data", history_max_entries=9, history_max_gb=1.5)
    assert synth.history.retention == Retention(9, 15 * 10**8)


def test_gradio_uses_the_folder_webui_sets(tmp_path):
    """Gradio reads GRADIO_TEMP_DIR when imported; a fresh process shows what it really uses."""
    code = ("import sys, webui; webui.use_data_folder(webui.parse_args(['--data-dir', sys.argv[1]]));"
            "import gradio.route_utils as r, gradio.utils as u; print(r.DEFAULT_TEMP_DIR); print(u.get_upload_folder())")
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = str((tmp_path / "data" / "tmp" / "gradio").resolve())
    assert out.stdout.split() == [expected, expected]

