"""Data folder, atomic writes, presets (save/load/delete/list, safe names, corrupt files skipped)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from index_tts import storage
from index_tts.storage import DataDir, PresetStore, atomic_write_bytes, atomic_write_text, sanitize_name, unique_output_name


def test_default_data_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.delenv(storage.DATA_ENV, raising=False)
    assert storage.default_data_dir() == Path("data")
    monkeypatch.setenv(storage.DATA_ENV, str(tmp_path / "elsewhere"))
    assert storage.default_data_dir() == tmp_path / "elsewhere"


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"first version")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]  # the temp file was cleaned up


def test_output_names_are_unique_and_sortable(tmp_path):
    names = [unique_output_name() for _ in range(500)]
    assert len(set(names)) == 500
    assert all(n.endswith(".wav") and "/" not in n for n in names)
    data = DataDir(tmp_path / "d").ensure()
    assert data.outputs.is_dir() and data.presets.is_dir()
    assert data.new_output_path().parent == data.outputs


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("My voice", "My voice"),
        ("../../etc/passwd", "etc_passwd"),
        ("/abs/path", "abs_path"),
        ("a\\b", "a_b"),
        ("  spaced   out  ", "spaced out"),
        ("温柔 女声", "温柔 女声"),
        ("x" * 200, "x" * storage.MAX_NAME_CHARS),
    ],
)
def test_sanitize_name(raw, expected):
    assert sanitize_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "..", ".", "/", "../..", "\x00\x01", 5])
def test_sanitize_rejects_names_without_content(raw):
    with pytest.raises(ValueError):
        sanitize_name(raw)


@pytest.fixture
def store(tmp_path):
    return PresetStore(tmp_path / "presets")


def test_preset_round_trip_with_audio(store, tmp_path):
    voice = tmp_path / "v.wav"
    voice.write_bytes(b"RIFF-voice")
    emo = tmp_path / "e.wav"
    emo.write_bytes(b"RIFF-emotion")
    params = {"emotion": {"mode": "vector", "sliders": [0.1] * 8}, "generation": {"top_k": 30}}
    saved, replaced = store.save("Narrator", params, voice=voice, emotion_audio=emo)
    assert not replaced
    loaded = store.load("Narrator")
    assert loaded.params == params
    assert loaded.voice_path.read_bytes() == b"RIFF-voice"
    assert loaded.emotion_audio_path.read_bytes() == b"RIFF-emotion"
    assert loaded.voice_path.parent == store.root / "Narrator"  # copied in, not referenced
    assert store.names() == ["Narrator"]


def test_preset_overwrite_reports_it_and_drops_stale_audio(store, tmp_path):
    voice = tmp_path / "v.wav"
    voice.write_bytes(b"v")
    store.save("p", {"a": 1}, voice=voice, emotion_audio=voice)
    _, replaced = store.save("p", {"a": 2}, voice=voice)
    assert replaced
    loaded = store.load("p")
    assert loaded.params == {"a": 2} and loaded.emotion_audio_path is None
    assert not (store.root / "p" / "emotion.wav").exists()


def test_preset_delete(store):
    store.save("gone", {})
    assert store.delete("gone") is True
    assert store.names() == []
    assert store.delete("gone") is False
    with pytest.raises(FileNotFoundError):
        store.load("gone")


def test_path_tricks_stay_inside_the_store(store, tmp_path):
    saved, _ = store.save("../../outside", {"x": 1})
    assert saved.name == "outside"
    assert (store.root / "outside" / "preset.json").is_file()
    assert not (tmp_path / "outside").exists()
    with pytest.raises(ValueError):
        store.delete("..")
    assert store.load("../outside").params == {"x": 1}  # same sanitised name, same preset


def test_corrupt_presets_are_reported_and_skipped(store):
    store.save("good", {"ok": True})
    bad_json = store.root / "broken"
    bad_json.mkdir()
    (bad_json / "preset.json").write_text("{ not json", encoding="utf-8")
    no_params = store.root / "noparams"
    no_params.mkdir()
    (no_params / "preset.json").write_text(json.dumps({"files": {}}), encoding="utf-8")
    (store.root / "empty_dir").mkdir()
    names, problems = store.scan()
    assert names == ["good"]
    assert {p.name for p in problems} == {"broken", "noparams", "empty_dir"}
    with pytest.raises(ValueError, match="corrupt"):
        store.load("broken")


def test_missing_audio_in_preset_is_ignored_not_fatal(store, tmp_path):
    voice = tmp_path / "v.wav"
    voice.write_bytes(b"v")
    store.save("p", {}, voice=voice)
    (store.root / "p" / "voice.wav").unlink()
    assert store.load("p").voice_path is None
    assert store.names() == ["p"]


def test_voice_store_rename_delete_and_corrupt_entries(tmp_path):
    from index_tts.storage import VoiceExists, VoiceStore

    store = VoiceStore(tmp_path / "voices")
    store.save("Alice", b"RIFFfake", tags=["a"], note="n")
    store.save("Bob", b"RIFFbob")
    with pytest.raises(VoiceExists):
        store.rename("Alice", "Bob")
    assert (store.get("Bob").audio_path.read_bytes()) == b"RIFFbob"  # nothing replaced
    renamed = store.rename("Alice", "Carol")
    assert renamed.name == "Carol" and renamed.tags == ("a",) and not store.exists("Alice")
    updated = store.update("Carol", note="changed")
    assert updated.note == "changed" and updated.tags == ("a",)
    # A folder whose metadata is garbage is reported and skipped, never fatal.
    (tmp_path / "voices" / "Broken").mkdir()
    (tmp_path / "voices" / "Broken" / "voice.json").write_text("{not json")
    voices, problems = store.scan()
    assert [v.name for v in voices] == ["Bob", "Carol"]
    assert [p.name for p in problems] == ["Broken"]
    assert store.delete("Bob") and not store.delete("Bob")
    assert sorted(p.name for p in (tmp_path / "voices").iterdir()) == ["Broken", "Carol"]
    with pytest.raises(ValueError):
        store.save("..", b"x")
    with pytest.raises(ValueError):
        store.save("Dave", b"x", tags=["ok", 3])
