"""`python -m index_tts project render INPUT --voice VOICE_OR_WAV --out DIR`: a book rendered from
the command line, through the service like any front end (its own Synthesizer, in this process).

The project is named after INPUT's file name and lives in the data folder, so running the same
command again resumes: segments already rendered are kept, never redone, and an edited book
renders only its changed segments. `--ray local|ADDRESS` renders the segments on Ray actors,
each holding the same engine as this process (index_tts.scale, an optional extra).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

RAY_MISSING = "Ray support is not installed: pip install -r requirements-ray.txt (see docs/scale-out.md)"


def add_parser(sub) -> None:
    p = sub.add_parser("project", help="long-form projects (audiobooks): render a book into chapter files and an audiobook",
                       description="Long-form projects: see docs/creator-guide.md, 'Projects'.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser("render", help="import INPUT (.txt, .md, .epub), render it, write DIR/",
                           description="Import a book, render every segment not rendered yet (resumable: run it "
                                       "again after a crash or an edit) and write the chapter files, the MP3 "
                                       "audiobook with chapter markers and its chapter SRT into DIR.")
    r.add_argument("input", metavar="INPUT", help="the book: plain text, Markdown (# headings are chapters) or EPUB")
    r.add_argument("--voice", required=True, metavar="VOICE_OR_WAV", help="a voice library name, or a reference audio file")
    r.add_argument("--out", required=True, metavar="DIR", help="where the chapter files and the audiobook go")
    r.add_argument("--engine", default="auto", help="auto (default), quick or indextts2, as for webui.py")
    r.add_argument("--seed", type=int, default=0, help="the project's seed: the same seed gives the same audio (default 0)")
    r.add_argument("--ray", default=None, metavar="local|ADDRESS",
                   help="render on Ray actors: 'local' starts a local Ray instance, or a cluster's address")
    r.add_argument("--name", default=None, help="the project's name (default: INPUT's file name)")
    r.add_argument("--format", default="mp3", help="the chapter files' format: mp3 (default), wav, flac, ogg or opus")
    r.add_argument("--data-dir", default=None, metavar="DIR", help="the data folder (default $INDEX_TTS_DATA or ./data)")
    r.add_argument("--model-dir", default=None, metavar="DIR", help="a flat model folder instead of the model store")
    r.add_argument("--cache-hub", default=None, metavar="DIR", help="the model store (default $INDEX_TTS_CACHE_HUB or ./cache_hub)")
    r.add_argument("--revision", default=None, metavar="REV", help="IndexTeam/IndexTTS-2 revision")


def project_name(path: Path) -> str:
    """A project name from a file name: what a name may not hold becomes '_'."""
    return re.sub(r"[^\w\- ]", "_", path.stem).strip(" _-")[:60] or "book"


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # the CLI only reads the model store
    from index_tts.service import EngineUnavailable, NotReady, ServiceError, Synthesizer, ValidationError, choose_engine

    book = Path(args.input)
    if not book.is_file():
        print(f"error: INPUT: no such file {book}", file=sys.stderr)
        return 2
    RayRunner = None
    if args.ray:
        try:
            from index_tts.scale.ray_runner import RayRunner
        except ImportError:
            print(f"error: --ray: {RAY_MISSING}", file=sys.stderr)
            return 2
    engine_kwargs = {"engine": args.engine, "model_dir": args.model_dir, "cache_hub": args.cache_hub, "revision": args.revision}
    try:
        factory, reason, store = choose_engine(**engine_kwargs)
    except (EngineUnavailable, ValueError) as e:
        print(f"error: --engine {args.engine}: {e}", file=sys.stderr)
        return 2
    synth = Synthesizer(factory, data_dir=args.data_dir, selection_reason=reason, model_store=store).start()
    name = args.name or project_name(book)
    voice_file = args.voice if Path(args.voice).is_file() else None
    try:
        if synth.wait_until_loaded() != "ready":
            raise NotReady("failed", 0.0, synth.status().error)
        print(f"engine: {reason}", flush=True)
        synth.create_project(name, book.name, book.read_bytes(), voice="" if voice_file else args.voice,
                             voice_file=voice_file, seed=args.seed, replace_existing=True)
        runner = None if RayRunner is None else RayRunner(args.ray, engine_kwargs, progress=lambda fraction, stage: None)
        before = synth.project_progress(name)
        print(f"project {name!r}: {len(before.chapters)} chapters, {before.total} segments, "
              f"{before.done} already rendered, {before.total - before.done} to render", flush=True)

        def show(progress) -> None:
            print(f"[{progress.done}/{progress.total}] {progress.message}", flush=True)

        report = synth.render_project(name, runner=runner, on_segment=show)
        print(f"rendered {report.rendered} segments, kept {report.kept}", flush=True)
        result = synth.export_project(name, Path(args.out), args.format)
    except ValidationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in [*result.chapter_files, result.book, result.srt]:
        print(f"wrote {path}")
    print(f"audiobook: {result.duration_s:.1f} s, {len(result.chapter_files)} chapters")
    return 0
