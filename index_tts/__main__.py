"""`python -m index_tts <command>`: the model-store commands.

    serve     run the studio (webui.py and its options); with --ray ADDRESS --replicas N its engine
              runs as N replicas on Ray Serve (docs/scale-out.md)
    download  fetch the IndexTTS2 (or, with --model 2.5|both, IndexTTS-2.5) weights into cache_hub/
              (see docs/models.md)
    doctor    check the model files of both models, disk, storage speed and which engine will run
    project   long-form projects: `project render BOOK --voice V --out DIR` (index_tts/project_cli.py)

(Other tools are their own modules: `python -m index_tts.tools.make_model_dir`, ...)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-hub", default=None, metavar="DIR",
                   help="the model store (a Hugging Face hub cache); default $INDEX_TTS_CACHE_HUB or ./cache_hub")
    p.add_argument("--revision", default=None, metavar="REV",
                   help="IndexTeam/IndexTTS-2 branch, tag or commit (default $INDEX_TTS_REVISION or the manifest's 'main')")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m index_tts", description="IndexTTS Studio: the model store and long-form projects.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # `serve` hands every argument to webui.py unparsed (main() intercepts it); listed for --help.
    sub.add_parser("serve", help="run the studio: webui.py's options, plus --ray ADDRESS --replicas N (Ray Serve)")

    d = sub.add_parser("download", help="fetch the IndexTTS2 weights into the model store",
                       description="Fetch every repo in the manifest into the model store (resumable; "
                                   "honours HF_ENDPOINT, HF_TOKEN and HTTPS_PROXY).")
    _store_args(d)
    d.add_argument("--dry-run", action="store_true", help="list what would be fetched and how much, fetch nothing")
    d.add_argument("--verify", action="store_true", help="also re-hash files already present and re-fetch those that differ")
    d.add_argument("--if-missing", action="store_true",
                   help="do nothing (and use no network) when every required file is already present")
    d.add_argument("--model", choices=("2", "2.5", "both"), default="2",
                   help="IndexTTS2 (2, default), IndexTTS-2.5 (2.5) or both; shared files are fetched once")

    c = sub.add_parser("doctor", help="check model files, disk, storage speed and the engine that will run",
                       description="Exits 1 when the IndexTTS2 set is incomplete.")
    _store_args(c)
    c.add_argument("--model-dir", default=None, metavar="DIR", help="check a flat model folder instead of the store")
    c.add_argument("--verify", action="store_true", help="re-hash every file (sha256) against the recorded hashes")
    c.add_argument("--copy-local", default=None, metavar="DIR",
                   help="copy the weights to DIR on local disk (then start with --model-dir DIR)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--model", choices=("2", "2.5", "both"), default="both",
                   help="which model to check (default both; the exit status follows IndexTTS2 unless 2.5 alone is asked)")
    from index_tts import project_cli

    project_cli.add_parser(sub)
    return parser.parse_args(argv)


def _cache_hub(args) -> Path:
    from index_tts.model_store.layout import default_cache_hub

    return Path(args.cache_hub) if args.cache_hub else default_cache_hub()


def _revision(args) -> str | None:
    import os

    return args.revision or os.environ.get("INDEX_TTS_REVISION") or None


def cmd_download(args) -> int:
    from index_tts.model_store.download import download

    return download(_cache_hub(args), _revision(args), dry_run=args.dry_run, verify=args.verify, if_missing=args.if_missing,
                    model=args.model)


def cmd_doctor(args) -> int:
    from index_tts.engines import indextts2_unavailable_reason
    from index_tts.model_store.doctor import copy_local, format_report, inspect
    from index_tts.model_store.layout import open_model_files

    primary = "2.5" if args.model == "2.5" else "2"
    files = open_model_files(args.model_dir, _cache_hub(args), _revision(args), primary)
    report = inspect(files, verify=args.verify, measure=True)
    engine = "quick voice (the IndexTTS2 set is incomplete)"
    if report.complete:
        reason = indextts2_unavailable_reason(files) if primary == "2" else ""
        engine = f"quick voice ({reason})" if reason else report.model_name
    # A flat --model-dir holds one model; the hub store is checked for IndexTTS-2.5 too.
    second = None
    if args.model == "both" and args.model_dir is None:
        second = inspect(open_model_files(None, _cache_hub(args), None, "2.5"), verify=args.verify)
    if args.json:
        out = {**report.as_dict(), "engine": engine, "files": [vars(f) for f in report.files]}
        if second is not None:
            out["models"] = {"2.5": {**second.as_dict(), "files": [vars(f) for f in second.files]}}
        print(json.dumps(out, indent=1))
    else:
        from index_tts.modules.kernels import report_lines

        print(format_report(report, engine))
        print("\n".join(report_lines()))
        if second is not None:
            print("\n" + format_report(second))
    if args.copy_local:
        if not report.complete:
            print(f"error: not copying an incomplete set. {report.fix}", file=sys.stderr)
            return 1
        print(f"Copying the weights to {args.copy_local} ...")
        copy_local(files, Path(args.copy_local))
        print(f"Done. Start with: ./start_app.sh -- --model-dir {args.copy_local}   (or webui.py --model-dir {args.copy_local})")
    return 0 if report.complete else 1


def cmd_serve(options: list[str]) -> int:
    """The launcher, in place of this process (so signals and the exit status are its own)."""
    import os

    webui = Path(__file__).resolve().parents[1] / "webui.py"
    os.execv(sys.executable, [sys.executable, str(webui), *options])
    return 1  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return cmd_serve(argv[1:])
    args = parse_args(argv)
    if args.command == "project":
        from index_tts import project_cli

        return project_cli.run(args)
    return {"download": cmd_download, "doctor": cmd_doctor}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
