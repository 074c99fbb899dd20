"""Health probes.

    GET /healthz  200 whenever the process serves requests (liveness).
    GET /readyz   200 {engine, device, version, queue} once the default model's engine is loaded;
                  503 {state, progress, message} while loading (with Retry-After) or after a failed load.
                  `model` is the default model, `models` every served one with its own state
                  ("not loaded": `--model both`'s second model before its first request).
                  Both carry `model_store`: the doctor's findings (layout, revision, missing files and the
                  command that fetches them, mount kind, warnings).

Synthesis over HTTP: the OpenAI-compatible routes in `openai.py`, or Gradio's own API
(`/gradio_api/...`, api_name "synthesize"); both call the one Synthesizer.
"""

from __future__ import annotations

from typing import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from index_tts.service import Synthesizer


def make_router(get_synthesizer: Callable[[], Synthesizer]) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz() -> JSONResponse:
        status = get_synthesizer().status()
        if status.state == "ready":
            return JSONResponse({
                "state": "ready",
                "engine": status.engine,
                "device": status.device,
                "version": status.version,
                "quick_voice": status.is_quick_voice,
                "queue": get_synthesizer().queue_length(),  # requests running or waiting
                "model_store": status.model_store,
                "model": status.model,
                "models": status.models,
            })
        body = {"state": status.state, "progress": round(status.progress, 3), "message": status.message,
                "model_store": status.model_store, "model": status.model, "models": status.models}
        if status.state == "failed":
            body["message"] = f"engine failed to load: {status.error}"
            return JSONResponse(body, status_code=503)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})

    return router
