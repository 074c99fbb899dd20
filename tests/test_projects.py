"""Long-form projects: import (text, Markdown, EPUB), resumable rendering, re-render after an edit,
export (chapter files, an MP3 audiobook whose chapters mutagen reads back, a chapter SRT), the CLI
(a real subprocess, killed mid-render and run again) and bad input (named errors, nothing written)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from index_tts.service import (UNCHANGED, Cancelled, Conflict, EmotionSpec, NotFound, ValidationError, preset_spec)
from index_tts.service.audiobook import read_chapters
from index_tts.service.books import read_book, split_segments
from index_tts.subtitles import parse_srt
from tests.http_server import write_voice
from tests.test_service import quick_synth  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
BOOK = """Some words before the first chapter.

# The Beginning

It was a quiet morning. The birds sang in the old oak tree.

A second paragraph of the first chapter, short.

# [happy] The Middle

[happy] Everything went well, and everyone smiled. Then it rained.

# The End

And that was all. *Goodbye*, said the [narrator](http://example.com).
"""


@pytest.fixture(scope="module")
def synth(quick_synth):  # noqa: F811
    return quick_synth


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    return write_voice(tmp_path_factory.mktemp("projects") / "voice.wav")


def stored(synth, name: str) -> dict[str, float]:
    """The project's rendered segments: key -> modification time."""
    folder = synth.data_root / "projects" / name / "clips"
    return {p.stem: p.stat().st_mtime_ns for p in folder.glob("*.wav")}


def make_epub(path: Path, chapters: list[tuple[str, str]], spine: list[int]) -> Path:
    """A minimal EPUB 3: a cover without text, then the chapters in `spine` order."""
    items = "".join(f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>' for i in range(len(chapters)))
    refs = '<itemref idref="cover"/>' + "".join(f'<itemref idref="c{i}"/>' for i in spine)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                   'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                   '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf", '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
                   '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A Small Book</dc:title></metadata>'
                   f'<manifest><item id="cover" href="cover.xhtml" media-type="application/xhtml+xml"/>{items}</manifest>'
                   f'<spine>{refs}</spine></package>')
        z.writestr("OEBPS/cover.xhtml", '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Cover</title></head>'
                   '<body><img src="cover.png" alt=""/></body></html>')
        for i, (title, text) in enumerate(chapters):
            paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
            z.writestr(f"OEBPS/text/ch{i}.xhtml", f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title>'
                       f'<style>p {{ margin: 0 }}</style></head><body><h1>{title}</h1>{paragraphs}</body></html>')
    return path


# -- import ----------------------------------------------------------------------------------------


def test_markdown_headings_are_chapters_and_markup_is_reduced_to_words():
    title, chapters = read_book("tale.md", BOOK.encode())
    assert title == "tale"
    assert [c.title for c in chapters] == ["Opening", "The Beginning", "The Middle", "The End"]
    assert chapters[3].text == "And that was all. Goodbye, said the narrator."
    assert "[happy] Everything" in chapters[2].text   # inline tags are kept for the engine


def test_epub_chapters_come_in_spine_order_with_their_titles(tmp_path):
    book = make_epub(tmp_path / "small.epub", [("First Light", "One.\n\nTwo &amp; three."), ("Second Wind", "Four.")],
                     spine=[1, 0])
    title, chapters = read_book(book.name, book.read_bytes())
    assert title == "A Small Book"
    assert [(c.title, c.text) for c in chapters] == [("Second Wind", "Second Wind\n\nFour."),
                                                    ("First Light", "First Light\n\nOne.\n\nTwo & three.")]


def test_segments_are_paragraphs_cut_at_sentences_and_carry_their_emotion():
    text = "[sad] One sentence here. Another one follows! A third?\n\nA new paragraph. [default] Plain again."
    assert split_segments(text, 40) == ["[sad] One sentence here.", "[sad] Another one follows! A third?",
                                        "[sad] A new paragraph. [default] Plain again."]
    assert split_segments("你好。我是一个人！[开心] 今天天气很好？\n\n第二段。") == ["你好。我是一个人！[开心] 今天天气很好？", "[开心] 第二段。"]
    assert split_segments("It cost 1,000 dollars, and then [happy:0.5] more, much more than that.", 30) == \
        ["[happy:0.5] It cost 1,000 dollars, and", "[happy:0.5] then [happy:0.5] more, much", "[happy:0.5] more than that."]
    long = " ".join(["word"] * 50)
    assert all(len(s) <= 40 for s in split_segments(long, 40)) and " ".join(split_segments(long, 40)) == long


# -- render, resume, edit --------------------------------------------------------------------------


def test_a_project_renders_resumes_and_redoes_only_what_an_edit_changed(synth, wav):
    project = synth.create_project("edit me", "tale.md", BOOK.encode(), voice_file=str(wav), seed=3)
    assert [c.title for c in project.chapters][1:] == ["The Beginning", "The Middle", "The End"]
    with pytest.raises(Conflict):
        synth.create_project("edit me", "tale.md", BOOK.encode(), voice_file=str(wav))

    seen = []
    report = synth.render_project("edit me", on_segment=seen.append)
    progress = synth.project_progress("edit me")
    assert report.rendered == report.total == progress.total == progress.done == len(stored(synth, "edit me")) == 5
    assert [(c.done, c.total) for c in progress.chapters] == [(1, 1), (2, 2), (1, 1), (1, 1)]
    assert progress.state == "done" and [p.done for p in seen] == [1, 2, 3, 4, 5]
    before = stored(synth, "edit me")

    assert synth.render_project("edit me").rendered == 0   # nothing is ever redone
    synth.update_chapter("edit me", 1, text="It was a quiet evening. The birds sang in the old oak tree.\n\n"
                                            "A second paragraph of the first chapter, short.")
    again = synth.render_project("edit me")
    assert (again.rendered, again.kept) == (1, 4)
    after = stored(synth, "edit me")
    assert len(after) == 5 and len(set(after) - set(before)) == 1
    assert all(after[k] == before[k] for k in set(before) & set(after))   # untouched files stay as written

    synth.update_chapter("edit me", 3, emotion=preset_spec("sad"))   # one chapter's override: its segment only
    assert synth.render_project("edit me").rendered == 1
    synth.update_chapter("edit me", 3, emotion=None)   # back to the project's emotion: rendered again
    assert synth.render_project("edit me").rendered == 1
    synth.update_project("edit me", seed=4)   # a new seed reseeds every segment
    assert synth.render_project("edit me").rendered == 5
    assert synth.update_project("edit me", title="Edited").title == "Edited"


def test_pause_keeps_finished_segments_and_resume_renders_only_the_rest(synth, wav):
    text = "\n\n".join(f"Paragraph number {n} is spoken here." for n in range(8))
    synth.create_project("pausing", "p.txt", text.encode(), voice_file=str(wav))
    synth.start_project_render("pausing")
    with pytest.raises(Conflict):
        synth.start_project_render("pausing")                 # one render of a project at a time
    with pytest.raises(Conflict):
        synth.update_chapter("pausing", 0, title="x")        # no edits while it renders
    deadline = time.monotonic() + 60
    while synth.project_progress("pausing").done < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    synth.pause_project("pausing")
    while synth.project_progress("pausing").state == "rendering" and time.monotonic() < deadline:
        time.sleep(0.02)
    paused = synth.project_progress("pausing")
    assert paused.state == "paused" and 2 <= paused.done < 8 == paused.total
    kept = stored(synth, "pausing")
    assert len(kept) == paused.done and not [p for p in (synth.data_root / "projects/pausing/clips").iterdir() if p.suffix != ".wav"]
    report = synth.render_project("pausing")
    assert (report.rendered, report.kept) == (8 - paused.done, paused.done)
    assert all(stored(synth, "pausing")[k] == t for k, t in kept.items())

    cancel = threading.Event()
    synth.update_project("pausing", seed=9)
    with pytest.raises(Cancelled):
        synth.render_project("pausing", on_segment=lambda p: cancel.set(), cancel=cancel)
    assert synth.project_progress("pausing").state == "cancelled"
    with pytest.raises(Conflict):
        synth.pause_project("pausing")   # not rendering


# -- export ----------------------------------------------------------------------------------------


def test_export_writes_chapter_files_an_audiobook_with_chapters_and_an_srt(synth, wav, tmp_path):
    synth.create_project("export", "tale.md", BOOK.encode(), voice_file=str(wav))
    with pytest.raises(Conflict, match="not rendered"):
        synth.export_project("export")
    synth.render_project("export")
    result = synth.export_project("export", tmp_path / "out", "wav")
    assert [p.name for p in result.chapter_files] == ["01 Opening.wav", "02 The Beginning.wav", "03 The Middle.wav",
                                                      "04 The End.wav"]
    lengths = [sf.info(p).duration for p in result.chapter_files]
    assert all(n > 0.2 for n in lengths)
    chapters = read_chapters(result.book)
    assert [c[0] for c in chapters] == ["Opening", "The Beginning", "The Middle", "The End"]
    assert chapters[0][1] == 0 and all(a[2] == b[1] for a, b in zip(chapters, chapters[1:]))
    assert all(abs((e - s) - (n + 1.5)) < 0.01 for (_, s, e), n in zip(chapters[:-1], lengths[:-1]))  # + the pause
    assert abs(chapters[-1][2] - result.duration_s) < 0.01
    from mutagen.mp3 import MP3
    assert abs(MP3(result.book).info.length - result.duration_s) < 0.2
    cues = parse_srt(result.srt.read_text())   # both in whole milliseconds
    assert [c[0] for c in cues] == [c[0] for c in chapters]
    assert all(abs(a - b) <= 0.0011 for cue, chapter in zip(cues, chapters) for a, b in zip(cue[1:], chapter[1:]))
    assert synth.export_project("export").folder == synth.data_root / "projects" / "export" / "export"


# -- bad input -------------------------------------------------------------------------------------


def bad_zip() -> bytes:
    from io import BytesIO
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    return buffer.getvalue()


@pytest.mark.parametrize("name,filename,data,field,words", [
    ("empty", "empty.txt", b"", "file", "is empty"),
    ("blank", "blank.md", b"# Only a heading\n\n   \n", "file", "nothing to read"),
    ("latin1", "old.txt", "café".encode("latin-1"), "file", "not UTF-8"),
    ("not a zip", "bad.epub", b"PK not really a zip", "file", "not a zip"),
    ("no container", "bad.epub", bad_zip(), "file", "META-INF/container.xml"),
    ("lost chapter", "bad.epub", None, "file", "lacks OEBPS/text/ch1.xhtml"),
    ("bad tag", "tag.md", b"# One\nHello [pause forever] there.", "chapters[0].text", "pause"),
    ("../escape", "ok.txt", b"Hello.", "name", "letters, digits"),
    ("a/b", "ok.txt", b"Hello.", "name", "letters, digits"),
    ("..", "ok.txt", b"Hello.", "name", ""),
    ("", "ok.txt", b"Hello.", "name", "empty"),
])
def test_bad_input_is_a_named_error_and_writes_nothing(synth, wav, name, filename, data, field, words, tmp_path):
    if data is None:   # an EPUB whose manifest names a chapter the archive lacks
        book = make_epub(tmp_path / "b.epub", [("One", "Text."), ("Two", "More.")], spine=[0, 1])
        with zipfile.ZipFile(book) as z:
            kept = {n: z.read(n) for n in z.namelist() if n != "OEBPS/text/ch1.xhtml"}
        with zipfile.ZipFile(book, "w") as z:
            for n, content in kept.items():
                z.writestr(n, content)
        data = book.read_bytes()
    before = sorted((synth.data_root / "projects").rglob("*")) if (synth.data_root / "projects").is_dir() else []
    with pytest.raises(ValidationError) as error:
        synth.create_project(name, filename, data, voice_file=str(wav))
    assert error.value.field == field and words in str(error.value)
    after = sorted((synth.data_root / "projects").rglob("*")) if (synth.data_root / "projects").is_dir() else []
    assert after == before


def test_bad_settings_and_unknown_projects_are_named(synth, wav):
    with pytest.raises(ValidationError) as e:
        synth.create_project("no voice", "ok.txt", b"Hello.", voice="nobody")
    assert e.value.field == "voice"
    with pytest.raises(ValidationError) as e:
        synth.create_project("bad seed", "ok.txt", b"Hello.", voice_file=str(wav), seed=-1)
    assert e.value.field == "seed"
    with pytest.raises(NotFound):
        synth.get_project("never made")
    with pytest.raises(NotFound):
        synth.render_project("never made")
    synth.create_project("small", "ok.txt", b"Hello there.", voice_file=str(wav))
    for kwargs, field in [({"text": "  "}, "text"), ({"text": "bad [vector 1,2]"}, "text"), ({"generation": {"temperature": 99}}, "generation"),
                          ({"voice": "nobody"}, "voice")]:
        with pytest.raises(ValidationError) as e:
            synth.update_chapter("small", 0, **kwargs)
        assert e.value.field == field
    with pytest.raises(ValidationError) as e:
        synth.update_chapter("small", 5, title="x")
    assert e.value.field == "chapter"
    assert synth.get_project("small").chapters[0].text == "Hello there."
    assert "small" in synth.list_projects()
    synth.delete_project("small")
    assert "small" not in synth.list_projects() and not (synth.data_root / "projects" / "small").exists()
    assert UNCHANGED is not None and EmotionSpec().mode


# -- the CLI ---------------------------------------------------------------------------------------


def cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "index_tts", "project", "render", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def test_the_cli_renders_a_markdown_book_into_chapter_files_and_an_audiobook(tmp_path, wav):
    (tmp_path / "tale.md").write_text(BOOK)
    args = [str(tmp_path / "tale.md"), "--voice", str(wav), "--engine", "quick", "--seed", "7"]
    first = cli(*args, "--out", str(tmp_path / "a"), "--data-dir", str(tmp_path / "data-a"), "--format", "wav")
    second = cli(*args, "--out", str(tmp_path / "b"), "--data-dir", str(tmp_path / "data-b"), "--format", "wav")
    out_a, out_b = first.communicate(timeout=300)[0], second.communicate(timeout=300)[0]
    assert first.returncode == 0, out_a
    assert second.returncode == 0, out_b
    assert "4 chapters, 5 segments, 0 already rendered, 5 to render" in out_a and "[5/5] chapter 4/4" in out_a
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["01 Opening.wav", "02 The Beginning.wav", "03 The Middle.wav", "04 The End.wav",
                     "tale.mp3", "tale.srt"]
    assert [c[0] for c in read_chapters(tmp_path / "a" / "tale.mp3")][1:] == ["The Beginning", "The Middle", "The End"]
    # Same seed: the same segments (keys). The quick voice's audio may differ by espeak's phase
    # state (docs/quick-voice.md), never in length; IndexTTS2's is identical (the tiny-model test).
    assert sorted(p.name for p in (tmp_path / "data-a/projects/tale/clips").iterdir()) == \
        sorted(p.name for p in (tmp_path / "data-b/projects/tale/clips").iterdir())
    for name in names[:4]:
        assert sf.info(tmp_path / "a" / name).frames == sf.info(tmp_path / "b" / name).frames


def test_killing_the_cli_mid_render_and_running_it_again_redoes_no_finished_segment(tmp_path, wav):
    book = tmp_path / "long.txt"
    n = 40   # enough that the kill lands mid-render
    book.write_text("\n\n".join(f"This is paragraph {i}, one of many in a long text." for i in range(n)))
    args = [str(book), "--voice", str(wav), "--engine", "quick", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")]
    first = cli(*args, start_new_session=True)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith(f"[3/{n}]"):
            os.killpg(first.pid, signal.SIGKILL)   # no chance to tidy up
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(seen)
    clips = tmp_path / "data/projects/long/clips"
    kept = {p.name: p.stat().st_mtime_ns for p in clips.glob("*.wav")}
    assert 3 <= len(kept) < n
    again = cli(*args)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    assert f"{n} segments, {len(kept)} already rendered, {n - len(kept)} to render" in output
    assert f"rendered {n - len(kept)} segments, kept {len(kept)}" in output
    assert output.count("segments rendered\n") == n - len(kept)
    assert all(clips.joinpath(n).stat().st_mtime_ns == t for n, t in kept.items())
    assert len(list(clips.glob("*.wav"))) == n and not [p for p in clips.iterdir() if p.suffix != ".wav"]
    assert (tmp_path / "out/long.mp3").is_file()


def test_without_the_ray_extra_ray_is_refused_plainly_before_anything_is_written(tmp_path, wav, monkeypatch, capsys):
    from index_tts.__main__ import main

    monkeypatch.setitem(sys.modules, "index_tts.scale.ray_runner", None)   # what a missing extra looks like
    (tmp_path / "tale.md").write_text(BOOK)
    code = main(["project", "render", str(tmp_path / "tale.md"), "--voice", str(wav), "--engine", "quick", "--ray", "local",
                 "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")])
    assert code == 2 and "--ray: Ray support is not installed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


def test_the_cli_names_bad_input_and_writes_nothing(tmp_path, wav):
    (tmp_path / "empty.md").write_text("")
    run = cli(str(tmp_path / "empty.md"), "--voice", str(wav), "--engine", "quick", "--out", str(tmp_path / "out"),
              "--data-dir", str(tmp_path / "data"))
    output = run.communicate(timeout=300)[0]
    assert run.returncode == 2 and "file: is empty" in output
    assert not (tmp_path / "out").exists() and not (tmp_path / "data/projects").exists()


def test_the_same_seed_gives_the_same_audio_with_indextts2(tiny_model_dir, tmp_path, wav):
    """The tiny random IndexTTS2 model: two renders with one seed are sample-identical; another
    seed changes them."""
    (tmp_path / "tale.md").write_text("# One\nHello there.\n# Two\nGood night.\n")
    outputs = {}
    for run, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        proc = cli(str(tmp_path / "tale.md"), "--voice", str(wav), "--engine", "indextts2", "--model-dir", str(tiny_model_dir),
                   "--seed", seed, "--out", str(tmp_path / run), "--data-dir", str(tmp_path / f"data-{run}"), "--format", "wav")
        output = proc.communicate(timeout=900)[0]
        assert proc.returncode == 0, output
        outputs[run] = [sf.read(tmp_path / run / name, dtype="int16")[0] for name in ("01 One.wav", "02 Two.wav")]
    assert all(np.array_equal(a, b) for a, b in zip(outputs["a"], outputs["b"]))
    assert not all(len(a) == len(c) and np.array_equal(a, c) for a, c in zip(outputs["a"], outputs["c"]))
    assert math.isfinite(float(np.abs(outputs["a"][0]).max()))
