"""The OpenAI-compatible HTTP API: speech and the voice library, on the same server as the studio.

    POST   /v1/audio/speech      text -> audio (JSON as OpenAI's API, or multipart with an uploaded
                                 reference); `stream: true` sends audio as each segment finishes
    GET    /v1/models            the models this studio serves (`model` of a speech request)
    GET    /v1/models/{id}       one of them
    GET    /v1/voices            the saved voices (and the unreadable ones, as problems)
    GET    /v1/voices/{name}     one saved voice
    POST   /v1/voices            upload a reference (multipart), checked like a synthesis voice
    DELETE /v1/voices/{name}     remove a saved voice
    POST   /v1/dubbing           a subtitle file voiced cue by cue (multipart) -> a zip of the track,
                                 the cues, report.json and the subtitles

This layer only translates: HTTP fields -> service calls; every error a route raises is answered
by errors.service_error (one mapping). What is valid is decided by the service. See docs/api.md.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from index_tts.api.errors import BadRequest, ErrorMappingRoute, parse_json
from index_tts.api.schema import (AUDIO_TYPES, DUBBING_SCHEMA, MULTIPART_SPEECH_SCHEMA, SPEECH_SCHEMA, VOICE_UPLOAD_SCHEMA,
                                  GenerationBody, SpeechBody, build_request)
from index_tts.api.streaming import remove, result_headers, run_off_loop, start, stream, wait_or_disconnect
from index_tts.service import GenerationParams, NotFound, RoleSetting, SynthesisResult, Synthesizer, ValidationError, audio_format

FORM_OVERHEAD_BYTES = 64 * 1024  # room for the multipart framing and text fields around a file
JSON_LIMIT_BYTES = 1024 * 1024   # a JSON speech request is text and a few numbers


def make_openai_router(get_synthesizer: Callable[[], Synthesizer]) -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=ErrorMappingRoute, tags=["OpenAI-compatible API"])
    get_synthesizer().clear_uploads()  # uploads left by a crash (SIGKILL mid-request) belong to no request now

    async def read_body(http: Request, limit: int, field: str) -> bytes:
        """The request body, refused (413) as soon as it passes `limit` bytes, however it is sent."""
        too_large = BadRequest(413, field, f"{field}: the request is too large (at most {limit / 2**20:.1f} MB)")
        declared = http.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for chunk in http.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        http._body = bytes(body)  # Starlette's form parser reads the cached body
        return http._body

    async def read_form(http: Request):
        """The multipart form, with the upload limit enforced while the body arrives."""
        await read_body(http, get_synthesizer().limits.max_upload_bytes + FORM_OVERHEAD_BYTES, "file")
        try:
            return await http.form(max_files=4, max_fields=50)
        except HTTPException as e:  # Starlette's word for a malformed form
            raise BadRequest(400, "body", f"body: not a readable multipart form ({e.detail})") from e

    async def save_upload(form, field: str, created: list[Path]) -> Path | None:
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            if isinstance(upload, str) and upload:
                raise BadRequest(422, field, f"{field}: must be a file upload")
            return None
        data = await upload.read()
        if not data:
            raise BadRequest(422, field, f"{field}: the uploaded file is empty")
        if len(data) > get_synthesizer().limits.max_upload_bytes:
            raise BadRequest(413, field, f"{field}: the upload is too large")
        # A random name: the client's file name never becomes a path here.
        path = get_synthesizer().upload_dir / f"{secrets.token_hex(8)}.upload"
        created.append(path)
        path.write_bytes(data)
        return path

    def form_text(form, name: str) -> str | None:
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(422, name, f"{name}: must be text, not a file")
        return value

    def json_field(form, name: str) -> Any:
        raw = form_text(form, name)
        return None if raw is None or raw == "" else parse_json(raw.encode("utf-8", "surrogatepass"), name)

    async def speech_fields(http: Request, created: list[Path]) -> tuple[dict, Path | None, Path | None]:
        """The request's fields and its uploads (voice_file, emotion_file), JSON or multipart."""
        content_type = http.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "multipart/form-data":
            return parse_json(await read_body(http, JSON_LIMIT_BYTES, "body")), None, None
        form = await read_form(http)
        try:
            voice_file = await save_upload(form, "voice_file", created)
            emotion_file = await save_upload(form, "emotion_file", created)
            fields = {k: v for k, v in form.items() if k not in ("voice_file", "emotion_file")}
            for name in ("emotion", "generation"):
                if name in fields:
                    fields[name] = json_field(form, name)
        finally:
            await form.close()
        return {k: v for k, v in fields.items() if v is not None and v != ""}, voice_file, emotion_file

    @router.post(
        "/audio/speech",
        summary="Text to speech (OpenAI-compatible)",
        response_class=Response,
        responses={200: {"content": AUDIO_TYPES, "description": "the audio, in `response_format`"},
                   400: {"description": "the body is unusable (not UTF-8, nested too deep, a key given twice)"},
                   422: {"description": "a field is invalid; `error.param` names it"},
                   429: {"description": "the queue is full; see Retry-After"},
                   503: {"description": "the engine is still loading"}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": SPEECH_SCHEMA},
            "multipart/form-data": {"schema": MULTIPART_SPEECH_SCHEMA}}}},
    )
    async def speech(http: Request) -> Response:
        synth = get_synthesizer()
        created: list[Path] = []
        try:
            fields, voice_file, emotion_file = await speech_fields(http, created)
            body = SpeechBody.model_validate(fields)
            request = build_request(synth, body, voice_file, emotion_file)
            if body.stream:
                return await stream(http, synth, request, created)
            cancel = threading.Event()
            job = start(synth, request, cancel)
            if not await wait_or_disconnect(http, job, cancel):
                return Response(status_code=499)  # nobody reads it; uvicorn drops it
            result: SynthesisResult = job.result()
            return Response(result.path.read_bytes(), media_type=audio_format(result.format).media_type,
                            headers=result_headers(result))
        finally:
            remove(created)  # empty when a stream took the uploads over

    def model_object(info) -> dict:
        # OpenAI's model object, with the studio's own fields after its four.
        return {"id": info.id, "object": "model", "created": 0, "owned_by": "IndexTeam", **info.as_dict()}

    @router.get("/models", summary="List the models served (available: their weights are present)")
    def list_models() -> dict:
        return {"object": "list", "data": [model_object(m) for m in get_synthesizer().models() if m.available]}

    @router.get("/models/{model_id}", summary="One served model")
    def get_model(model_id: str) -> Response:
        for info in get_synthesizer().models():
            if info.id == model_id and info.available:
                return JSONResponse(model_object(info))
        raise NotFound("model", model_id, "model")

    @router.get("/voices", summary="List the saved voices")
    def list_voices() -> dict:
        voices, problems = get_synthesizer().list_voices()
        return {"object": "list", "data": [v.as_dict() for v in voices],
                "problems": [{"name": p.name, "message": p.message} for p in problems]}

    @router.get("/voices/{name}", summary="One saved voice's details")
    def get_voice(name: str) -> Response:
        return JSONResponse(get_synthesizer().get_voice(name).as_dict())

    @router.post("/voices", summary="Save an uploaded reference voice", status_code=201,
                 openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": VOICE_UPLOAD_SCHEMA}}}})
    async def create_voice(http: Request) -> Response:
        synth = get_synthesizer()
        created: list[Path] = []
        try:
            if http.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
                raise BadRequest(422, "file", "file: send multipart/form-data with `name` and `file`")
            form = await read_form(http)
            try:
                path = await save_upload(form, "file", created)
                name, tags, note, overwrite = (form_text(form, k) for k in ("name", "tags", "note", "overwrite"))
            finally:
                await form.close()
            if path is None:
                raise BadRequest(422, "file", "file: upload the reference audio as `file`")
            if not name:
                raise BadRequest(422, "name", "name: is required")
            if (overwrite or "false").strip().lower() not in ("true", "false", "1", "0"):
                raise BadRequest(422, "overwrite", f"overwrite: must be true or false, got {overwrite[:20]!r}")
            voice, replaced = await asyncio.to_thread(
                synth.save_voice, name, path, tags=tags or (), note=note or "",
                overwrite=(overwrite or "").strip().lower() in ("true", "1"))
            return JSONResponse(voice.as_dict(), status_code=200 if replaced else 201)
        finally:
            remove(created)

    @router.delete("/voices/{name}", summary="Delete a saved voice")
    def delete_voice(name: str) -> Response:
        get_synthesizer().delete_voice(name)
        return JSONResponse({"name": name, "deleted": True})

    @router.post("/dubbing", summary="Dub a subtitle file (SRT or WebVTT) onto one track", response_class=Response,
                 responses={200: {"content": {"application/zip": {}}, "description": "track.<fmt>, cues/NNN.<fmt>, report.json, "
                                                                                     "the subtitles (and retimed.srt when a cue's end moved)"},
                            422: {"description": "a bad field or subtitle file; `error.param` names it, the message the cue"}},
                 openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": DUBBING_SCHEMA}}}})
    async def dubbing(http: Request) -> Response:
        synth = get_synthesizer()
        if http.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
            raise BadRequest(422, "subtitles", "subtitles: send multipart/form-data with the `subtitles` file")
        form = await read_form(http)
        try:
            upload = form.get("subtitles")
            subtitles = upload if isinstance(upload, str) else (await upload.read() if upload is not None else None)
            voice, fit, fmt, seed = (form_text(form, k) for k in ("voice", "fit", "response_format", "seed"))
            roles = json_field(form, "roles")
            generation = json_field(form, "generation")
        finally:
            await form.close()
        if not subtitles:
            raise BadRequest(422, "subtitles", "subtitles: upload the SRT or WebVTT file as `subtitles`")
        if roles is not None and (not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values())):
            raise ValidationError("roles", 'must be a JSON object {"role": "saved voice name", ...}')
        given = GenerationBody.model_validate(generation or {}).model_dump(exclude_none=True)
        if seed not in (None, ""):
            if not seed.strip().isdigit():
                raise ValidationError("seed", f"must be a whole number, got {seed[:20]!r}")
            given["seed"] = int(seed)
        params = GenerationParams(**given)
        cancel = threading.Event()
        job = run_off_loop(lambda: synth.create_dubbing(
            subtitles, voice=voice or None, roles={r: RoleSetting(v) for r, v in roles.items()} if roles else None,
            fit=fit or "natural", output_format=fmt or "wav", generation=params, cancel=cancel), "api-dubbing")
        if not await wait_or_disconnect(http, job, cancel):
            return Response(status_code=499)
        result = job.result()
        return Response(await asyncio.to_thread(synth.dubbing_zip, result.job_id), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="dubbing-{result.job_id}.zip"',
                                 "X-Dubbing-Job": result.job_id})

    return router
