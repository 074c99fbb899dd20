"""IndexTTS Studio launcher: `python webui.py [--host H] [--port P] [--model 2|2.5|both] [--engine auto|quick|indextts2] ...`.

Importing this file does nothing; `main()` parses arguments, starts the engine loading in the
background, and serves the Gradio studio at `/` plus `/healthz` and `/readyz` with uvicorn.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
HISTORY_ENTRIES_ENV, HISTORY_GB_ENV = "INDEX_TTS_HISTORY_MAX_ENTRIES", "INDEX_TTS_HISTORY_MAX_GB"  # the flags' defaults


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="webui.py", description="IndexTTS Studio: emotional zero-shot TTS in the browser.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything else needs --auth-token)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--model", choices=["2", "2.5", "both"], default=os.environ.get("INDEX_TTS_MODEL") or "2",
                   help="which model to serve: IndexTTS2 (2, the default), IndexTTS-2.5 (2.5), or both (IndexTTS2 is "
                        "the default; IndexTTS-2.5 loads on its first request). Default $INDEX_TTS_MODEL or 2")
    p.add_argument("--engine", choices=["auto", "quick", "indextts2"], default="auto",
                   help="for IndexTTS2: auto = its weights when present, else the offline quick voice")
    p.add_argument("--cache-hub", default=None, metavar="DIR",
                   help="the model store, a Hugging Face hub cache (default $INDEX_TTS_CACHE_HUB or ./cache_hub)")
    p.add_argument("--revision", default=os.environ.get("INDEX_TTS_REVISION") or None, metavar="REV",
                   help="IndexTeam/IndexTTS-2 revision to load from the store (default: main)")
    p.add_argument("--model-dir", default=None, metavar="DIR",
                   help="load a flat IndexTTS2 model folder instead of the store (docs/weights.md)")
    p.add_argument("--model-dir-25", default=None, metavar="DIR",
                   help="load a flat IndexTTS-2.5 model folder instead of the store (docs/indextts25.md)")
    p.add_argument("--data-dir", default=None, help="where outputs and presets go (default $INDEX_TTS_DATA or ./data)")
    p.add_argument("--history-max-entries", type=int, default=os.environ.get(HISTORY_ENTRIES_ENV) or 500, metavar="N",
                   help=f"keep at most N history entries, the oldest go first (default ${HISTORY_ENTRIES_ENV} or 500)")
    p.add_argument("--history-max-gb", type=float, default=os.environ.get(HISTORY_GB_ENV) or 5.0, metavar="GB",
                   help=f"and at most this much disk for them (default ${HISTORY_GB_ENV} or 5)")
    p.add_argument("--auth-token", default=None,
                   help="require this token on every route but /healthz (default $INDEX_TTS_TOKEN)")
    p.add_argument("--load-delay", type=float, default=0.0, metavar="SECONDS",
                   help="demo/testing aid: hold the engine in the loading state this long before loading it")
    p.add_argument("--max-queue", type=int, default=8, metavar="N",
                   help="requests that may wait behind the running one; more get HTTP 429 (default 8)")
    p.add_argument("--request-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up on a request after this long, queue wait included (default 600)")
    p.add_argument("--max-text-chars", type=int, default=5000, metavar="N", help="longest text accepted (default 5000)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB", help="largest upload accepted (default 20)")
    p.add_argument("--max-voice-seconds", type=float, default=60.0, metavar="SECONDS",
                   help="longest reference clip accepted (default 60)")
    p.add_argument("--upload-formats", default="WAV,WAVEX,FLAC,MP3,OGG,AIFF,W64,RF64,CAF", metavar="LIST",
                   help="containers accepted for reference uploads, libsndfile names (default %(default)s)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages from this origin (e.g. https://app.example.com) to call the API; "
                        "repeatable. Default: none (no CORS headers at all)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the engine as replicas on Ray Serve: 'local' starts Ray on this machine, or a "
                        "cluster's address (needs requirements-ray.txt; docs/scale-out.md)")
    p.add_argument("--replicas", type=int, default=None, metavar="N",
                   help="with --ray: engine replicas (default one per GPU in the cluster, else one per 4 CPUs); "
                        "--max-queue then counts per replica")
    p.add_argument("--fault-injection", action="store_true",
                   help="TESTING AID ONLY: text markers like {{fault:raise}} make the engine fail on purpose")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    if args.model not in ("2", "2.5", "both"):  # argparse does not check a default ($INDEX_TTS_MODEL)
        p.error(f"--model (or INDEX_TTS_MODEL) must be 2, 2.5 or both, got {args.model!r}")
    if not 0 < args.port < 65536:
        p.error(f"--port must be in 1..65535, got {args.port}")
    if args.load_delay < 0:
        p.error("--load-delay must be >= 0")
    for name in ("max_queue", "max_text_chars", "history_max_entries"):
        if getattr(args, name) < (0 if name == "max_queue" else 1):
            p.error(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    for name in ("request_timeout", "max_upload_mb", "max_voice_seconds", "history_max_gb"):
        value = getattr(args, name)
        if not value > 0 or value == float("inf"):
            p.error(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if args.replicas is not None and (args.ray is None or args.replicas < 1):
        p.error("--replicas needs --ray ADDRESS and must be at least 1")
    args.upload_formats = tuple(f.strip().upper() for f in args.upload_formats.split(",") if f.strip())
    if not args.upload_formats:
        p.error("--upload-formats must name at least one container, e.g. WAV")
    if "*" in args.cors_origin:
        p.error("--cors-origin '*' would let any web page use this server; name the origins")
    args.auth_token = args.auth_token or os.environ.get("INDEX_TTS_TOKEN") or None
    if not is_loopback(args.host) and not args.auth_token:
        p.error(f"refusing to listen on {args.host} without a token: anyone on the network could use it. "
                "Set --auth-token (or INDEX_TTS_TOKEN), or bind 127.0.0.1.")
    return args


def use_data_folder(args: argparse.Namespace) -> None:
    """Before gradio is imported: Gradio's upload cache in the data folder, emptied."""
    from index_tts.service import prepare_gradio_temp

    os.environ["GRADIO_TEMP_DIR"] = str(prepare_gradio_temp(args.data_dir))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log = logging.getLogger("webui")

    # Before gradio (and huggingface_hub) are imported: no version check, no analytics, no Hub
    # telemetry, and no Hub requests at all. The app only reads the model store; fetching is
    # `python -m index_tts download`'s job, so it can never hang on the network.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    use_data_folder(args)

    from index_tts.service import (DEFAULT_MODEL, EngineUnavailable, Limits, ModelChoice, choose_models, get_synthesizer,
                                   init_synthesizer)

    if args.ray:
        if args.model != "2":
            log.error("--ray serves IndexTTS2 (--model 2) only; IndexTTS-2.5 runs in this process without --ray")
            return 2
        try:
            from index_tts.scale.serving import served_engine
        except ImportError as e:
            log.error("--ray needs the Ray extra: pip install -r requirements-ray.txt (%s)", e)
            return 2
        # Each replica chooses its engine on its own node; their model stores are theirs to report.
        engine_kwargs = dict(engine=args.engine, model_dir=args.model_dir, cache_hub=args.cache_hub, revision=args.revision,
                             fault_injection=args.fault_injection)
        model, default, others = DEFAULT_MODEL, ModelChoice(*served_engine(args.ray, args.replicas, engine_kwargs), {}), {}
    else:
        try:
            model, default, others = choose_models(args.model, args.engine, args.model_dir, args.cache_hub, args.revision,
                                                   args.model_dir_25, fault_injection=args.fault_injection)
        except EngineUnavailable as e:
            log.error("cannot start with --engine %s: %s", args.engine, e)
            return 2
    limits = Limits(max_text_chars=args.max_text_chars, max_voice_seconds=args.max_voice_seconds,
                    max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), upload_formats=args.upload_formats,
                    max_queue=args.max_queue,
                    request_timeout_s=args.request_timeout)
    synthesizer = init_synthesizer(default.factory, data_dir=args.data_dir, selection_reason=default.reason,
                                   load_delay_s=args.load_delay, limits=limits, model_store=default.model_store,
                                   history_max_entries=args.history_max_entries, history_max_gb=args.history_max_gb,
                                   model=model, others=others)
    log.info("data folder: %s", synthesizer.data_root.resolve())

    import uvicorn
    from fastapi_offline import FastAPIOffline

    from index_tts.api import TokenAuthMiddleware, make_openai_router, make_router
    from index_tts.ui.app import mount_ui

    # /docs (Swagger UI) and /openapi.json; the Swagger files come from the fastapi-offline wheel,
    # not a CDN, so the page works without internet.
    app = FastAPIOffline(title="IndexTTS Studio", redoc_url=None, static_url="/docs-static")
    app.include_router(make_router(get_synthesizer))  # before mounting Gradio at "/"
    app.include_router(make_openai_router(get_synthesizer))
    app = mount_ui(app, get_synthesizer, allowed_paths=[str(synthesizer.data_root.resolve())])
    served = TokenAuthMiddleware(app, args.auth_token) if args.auth_token else app
    if args.cors_origin:
        from starlette.middleware.cors import CORSMiddleware

        # Outside the token check: a browser's preflight (OPTIONS) never carries the token, and
        # CORSMiddleware answers it itself without reaching any route.
        served = CORSMiddleware(served, allow_origins=args.cors_origin, allow_methods=["GET", "POST", "DELETE"],
                                allow_headers=["Authorization", "Content-Type"])
    log.info("serving on http://%s:%d/%s", args.host, args.port, " (token required)" if args.auth_token else "")
    uvicorn.run(served, host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
