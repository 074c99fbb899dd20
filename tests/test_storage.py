"""Atomic writes (index_tts.fileio), the two store shapes once, presets and voices.

History and retention are in test_history.py, the glossary in test_glossary.py, user emotion
presets in test_creator_service.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from index_tts import fileio, storage
from index_tts.fileio import atomic_copy_file, atomic_write_json, remove_temp_leftovers
from index_tts.storage import (DataDir, FolderStore, JsonDocumentStore, PresetStore, atomic_write_bytes, atomic_write_text,
                               sanitize_name, unique_output_name)


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


def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    source, target = tmp_path / "big.bin", tmp_path / "out" / "copy.bin"
    source.write_bytes(b"x" * 1000)
    atomic_copy_file(source, target, chunk=100)
    assert target.read_bytes() == b"x" * 1000

    def copy_half(src, dst, length):
        dst.write(src.read(500))
        raise OSError("the source disk went away")

    monkeypatch.setattr(fileio.shutil, "copyfileobj", copy_half)
    source.write_bytes(b"y" * 1000)
    with pytest.raises(OSError, match="went away"):
        atomic_copy_file(source, target)
    assert target.read_bytes() == b"x" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]


def test_json_that_cannot_be_serialised_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "doc.json", {"not json": object()})
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(tmp_path / "doc.json", {"名": 1})
    assert json.loads((tmp_path / "doc.json").read_text(encoding="utf-8")) == {"名": 1}
    assert "名" in (tmp_path / "doc.json").read_text(encoding="utf-8")  # readable, not \u-escaped


def test_leftover_cleanup_removes_only_temp_files_of_atomic_writes(tmp_path):
    (tmp_path / "sub").mkdir()
    leftovers = [tmp_path / ".out.wav.k2j3.tmp", tmp_path / "sub" / ".voice.json.x1y2.tmp"]
    real = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "sub" / "voice.json", tmp_path / ".config.tmp"]
    for path in leftovers + real:
        path.write_bytes(b"x")
    assert remove_temp_leftovers(tmp_path, recursive=False) == [leftovers[0]]
    assert sorted(remove_temp_leftovers(tmp_path)) == [leftovers[1]]
    assert all(p.exists() for p in real)
    assert remove_temp_leftovers(tmp_path / "missing") == []


def test_a_copy_clears_what_killed_copies_to_the_same_target_left(tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / ".weights.bin.aaaa.tmp").write_bytes(b"half of a killed copy")
    (dest / ".other.bin.bbbb.tmp").write_bytes(b"another target's, maybe in progress")
    atomic_copy_file(source, dest / "weights.bin")
    assert sorted(p.name for p in dest.iterdir()) == [".other.bin.bbbb.tmp", "weights.bin"]


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


# ---------------------------------------------------------------------------------------------
# the two store shapes, through the smallest subclasses


class NoteStore(FolderStore):
    WHAT = "note"
    META_FILE = "note.json"
    FORMAT_VERSION = 3

    def save(self, name, text):
        folder = self._folder(name)
        atomic_write_text(folder / "body.txt", text)
        self._write_meta(folder, {"length": len(text)})

    def get(self, name):
        document = self._read_meta(self._folder(name))
        return document["name"], document["length"]


def test_folder_store_writes_versioned_metadata_and_reads_it_back(tmp_path):
    notes = NoteStore(tmp_path / "notes")
    notes.save("Café ../x", "hello")
    assert notes.exists("Café ../x") and notes.get("Café ___x") == ("Café ___x", 5)
    document = json.loads((tmp_path / "notes" / "Café ___x" / "note.json").read_text(encoding="utf-8"))
    assert document == {"format_version": 3, "name": "Café ___x", "length": 5}
    with pytest.raises(FileNotFoundError, match="no note named 'nothing'"):
        notes.get("nothing")
    with pytest.raises(ValueError):
        notes.get("..")


def test_folder_store_scan_sorts_by_name_and_reports_what_it_cannot_read(tmp_path):
    notes = NoteStore(tmp_path / "notes")
    for name in ("beta", "Alpha", "gamma"):
        notes.save(name, name)
    (tmp_path / "notes" / "gamma" / "note.json").write_text("[1, 2]")
    (tmp_path / "notes" / "half").mkdir()           # a folder whose metadata never got written
    (tmp_path / "notes" / ".deleted-x-1").mkdir()   # hidden: never a record
    loaded, problems = notes._scan(notes.get)
    assert loaded == [("Alpha", 5), ("beta", 4)]
    assert [(p.name, "corrupt" in p.message) for p in problems] == [("gamma", True), ("half", False)]


def test_folder_store_delete_moves_aside_first_and_leftovers_go_at_start(tmp_path, monkeypatch):
    notes = NoteStore(tmp_path / "notes")
    notes.save("kept", "k")
    notes.save("gone", "g")
    monkeypatch.setattr(storage.base.shutil, "rmtree", lambda *a, **k: None)  # killed before removing
    assert notes.delete("gone") is True
    monkeypatch.undo()
    assert not notes.exists("gone") and notes._scan(notes.get)[0] == [("kept", 1)]
    (tmp_path / "notes" / "kept" / ".body.txt.zz99.tmp").write_bytes(b"half")
    removed = notes.remove_leftovers()
    assert sorted(p.name.split("-")[0] for p in removed) == [".body.txt.zz99.tmp", ".deleted"]
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["kept"]
    assert sorted(p.name for p in (tmp_path / "notes" / "kept").iterdir()) == ["body.txt", "note.json"]
    assert notes.delete("gone") is False


class Shelf(JsonDocumentStore):
    WHAT = "shelf"
    KEY = "books"
    FORMAT_VERSION = 2

    def _parse(self, document):
        books = document["books"]
        if not all(isinstance(b, str) for b in books):
            raise ValueError("books must be titles")
        return books


def test_json_document_store_round_trip_and_corrupt_file_read_as_empty(tmp_path):
    shelf = Shelf(tmp_path / "shelf.json")
    assert shelf._read([]) == [] and shelf.problem == ""
    shelf._write(["Dune"])
    assert json.loads((tmp_path / "shelf.json").read_text()) == {"format_version": 2, "books": ["Dune"]}
    assert shelf._read([]) == ["Dune"]
    for content in (b"{not json", b'{"books": [1]}', b"[]", b"\xff\xfe"):
        (tmp_path / "shelf.json").write_bytes(content)
        assert shelf._read([]) == [] and "shelf.json is unreadable" in shelf.problem
    shelf._write(["Emma"])  # the next save replaces the broken file
    assert shelf._read([]) == ["Emma"] and shelf.problem == ""


# ---------------------------------------------------------------------------------------------
# presets and voices


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
    assert store.names() == [] and list(store.root.iterdir()) == []  # nothing moved aside is left
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
