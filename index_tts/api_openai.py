"""The OpenAI-compatible HTTP API: speech and the voice library, on the same server as the studio.

    POST   /v1/audio/speech      text -> audio (JSON as OpenAI's API, or multipart with an uploaded
                                 reference); `stream: true` sends audio as each segment finishes
    GET    /v1/voices            the saved voices (and the unreadable ones, as problems)
    POST   /v1/voices            upload a reference (multipart), checked like a synthesis voice
    DELETE /v1/voices/{name}     remove a saved voice

This layer only translates: HTTP fields -> SynthesisRequest, service exceptions -> status codes.
What is valid is decided by the service (`SynthesisRequest.validate`, `decode_audio`). Errors are
OpenAI-shaped JSON, `{"error": {"message", "type", "param", "code"}}`, where `param` names the field.
See docs/api.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import struct
import threading
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticError
from starlette.exceptions import HTTPException

from index_tts.emotion import DEFAULT_WEIGHT, EMOTIONS, EmotionSpec
from index_tts.encoding import FORMAT_NAMES, audio_format, encode
from index_tts.engines.base import GenerationParams
from index_tts.service import (
    OUTPUT_SAMPLE_RATE,
    Busy,
    Cancelled,
    NotReady,
    SynthesisRequest,
    SynthesisResult,
    Synthesizer,
    TimedOut,
    ValidationError,
)
from index_tts.storage import VoiceExists

log = logging.getLogger(__name__)

UPLOAD_FOLDER = "tmp"            # under the data folder; emptied at start and after every request
STREAMED_PROGRESSIVELY = ("pcm", "wav")  # others are sent whole once done (see docs/api.md)
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the multipart framing and text fields around a file
JSON_LIMIT_BYTES = 1024 * 1024   # a JSON speech request is text and a few numbers


# ---------------------------------------------------------------------------------------------
# request bodies (types only; ranges and meaning are checked by the service)


class EmotionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["same_as_voice", "audio", "vector", "text"] = Field(
        "same_as_voice", description="same_as_voice | audio (an emotion reference) | vector (8 weights) | text")
    weight: float = Field(DEFAULT_WEIGHT, description="emotion strength (emo_alpha), 0..1")
    vector: list[float] | dict[str, float] | None = Field(
        None, description=f"vector mode: 8 values in [0, 1.2] in the order {', '.join(EMOTIONS)}, or an object by name")
    text: str | None = Field(None, description="text mode: a description of the emotion (empty: read it from `input`)")
    voice: str | None = Field(None, description="audio mode: a saved voice to use as the emotion reference")
    random: bool = Field(False, description="pick random emotion rows instead of the speaker's nearest")


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_beams: int | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None
    max_mel_tokens: int | None = None
    max_text_tokens_per_segment: int | None = None
    interval_silence_ms: int | None = None
    seed: int | None = None
    quality: str | None = Field(None, description='"exact" (default: upstream\'s computation) or "fast" (fewer DiT steps and a '
                                                  'shorter DiT prompt: a labelled quality trade-off, see docs/performance.md)')


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field("indextts2", max_length=200, description="accepted for compatibility; the loaded engine speaks")
    input: str = Field(description="the text to speak")
    voice: str | None = Field(None, description="a saved voice (GET /v1/voices); multipart requests may upload `voice_file` instead")
    response_format: str = Field("mp3", description=f"one of {', '.join(FORMAT_NAMES)}")
    speed: float = Field(1.0, description="0.25..4.0; a pitch-preserving time stretch of the result")
    instructions: str | None = Field(None, description="OpenAI's style instructions: used as the emotion text when `emotion` is absent")
    stream: bool = Field(False, description="send audio as each segment finishes (pcm, wav: progressively)")
    emotion: EmotionBody | None = None
    generation: GenerationBody | None = None
    use_glossary: bool = True


# ---------------------------------------------------------------------------------------------
# errors


def error_response(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                        status_code=status, headers=headers)


def _pydantic_error(e: PydanticError | RequestValidationError, prefix: str = "") -> JSONResponse:
    first = e.errors()[0]
    parts = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = ".".join(filter(None, [prefix, *parts])) or "body"
    return error_response(422, f"{field}: {first.get('msg', 'invalid')}", field)


def service_error(e: BaseException) -> JSONResponse:
    """The service's exceptions as HTTP answers. Anything unexpected is a logged 500."""
    if isinstance(e, ValidationError):
        return error_response(422, str(e), e.field)
    if isinstance(e, Busy):
        return error_response(429, str(e), kind="rate_limit_error", headers={"Retry-After": str(e.retry_after_s)})
    if isinstance(e, NotReady):
        headers = {"Retry-After": "2"} if e.state == "loading" else None
        return error_response(503, str(e), kind="server_error", headers=headers)
    if isinstance(e, TimedOut):
        return error_response(504, str(e), kind="server_error")
    if isinstance(e, VoiceExists):
        return error_response(409, f"name: {e} (send overwrite=true to replace it)", "name")
    log.error("request failed", exc_info=(type(e), e, e.__traceback__))
    return error_response(500, f"synthesis failed: {type(e).__name__}: {e}", kind="server_error")


class _OpenAIErrorsRoute(APIRoute):
    """FastAPI's own request checks answer in the same error shape as everything else here."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                return _pydantic_error(e)

        return route


class _BadField(Exception):
    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field = status, field


# ---------------------------------------------------------------------------------------------
# running a request off the event loop


def _start(synth: Synthesizer, request: SynthesisRequest, cancel: threading.Event,
           on_audio: Callable[[np.ndarray], None] | None = None) -> asyncio.Future:
    """Run synthesize() in its own thread (so admission control, not a thread pool, decides who
    waits); the future completes on the event loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    # A client that left never reads the outcome; mark it read so asyncio does not log it.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def settle(outcome: Any, failed: bool) -> None:
        if not future.done():
            future.set_exception(outcome) if failed else future.set_result(outcome)

    def work() -> None:
        try:
            result = synth.synthesize(request, on_audio=on_audio, cancel=cancel)
        except BaseException as e:  # handed to the request's coroutine, which answers for it
            loop.call_soon_threadsafe(settle, e, True)
        else:
            loop.call_soon_threadsafe(settle, result, False)

    threading.Thread(target=work, name="api-synthesis", daemon=True).start()
    return future


async def _wait_or_disconnect(http: Request, future: asyncio.Future, cancel: threading.Event) -> bool:
    """Wait for the job; cancel it if the client goes away. True when the client is still there."""
    while not future.done():
        await asyncio.wait({future}, timeout=0.25)
        if not future.done() and await http.is_disconnected():
            cancel.set()
            return False
    return True


def wav_stream_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header whose sizes say "unknown" (0xFFFFFFFF), as streaming servers send:
    players read samples until the connection ends."""
    unknown = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", unknown))


# ---------------------------------------------------------------------------------------------
# the router


def make_openai_router(get_synthesizer: Callable[[], Synthesizer]) -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=_OpenAIErrorsRoute, tags=["OpenAI-compatible API"])

    def upload_dir() -> Path:
        folder = get_synthesizer().data.root / UPLOAD_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # Uploads left by a crash (SIGKILL mid-request) belong to no request now.
    for stale in upload_dir().glob("*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)

    async def read_body(http: Request, limit: int, field: str) -> bytes:
        """The request body, refused (413) as soon as it passes `limit` bytes, however it is sent."""
        too_large = _BadField(413, field, f"{field}: the request is too large (at most {limit / 2**20:.1f} MB)")
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
            raise _BadField(400, "body", f"body: not a readable multipart form ({e.detail})") from e

    async def save_upload(form, field: str, created: list[Path]) -> Path | None:
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            if isinstance(upload, str) and upload:
                raise _BadField(422, field, f"{field}: must be a file upload")
            return None
        data = await upload.read()
        if not data:
            raise _BadField(422, field, f"{field}: the uploaded file is empty")
        if len(data) > get_synthesizer().limits.max_upload_bytes:
            raise _BadField(413, field, f"{field}: the upload is too large")
        # A random name: the client's file name never becomes a path here.
        path = upload_dir() / f"{secrets.token_hex(8)}.upload"
        created.append(path)
        path.write_bytes(data)
        return path

    def json_field(form, name: str) -> Any:
        raw = form.get(name)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise _BadField(422, name, f"{name}: must be JSON text, not a file")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise _BadField(422, name, f"{name}: is not valid JSON ({e.msg})") from e

    def build_request(synth: Synthesizer, body: SpeechBody, voice_file: Path | None,
                      emotion_file: Path | None) -> SynthesisRequest:
        if voice_file is not None:
            voice = voice_file
        elif body.voice:
            voice = synth.voice_path(body.voice)
        else:
            raise ValidationError("voice", "name a saved voice (GET /v1/voices) or upload voice_file")
        emo = body.emotion
        if emo is None and body.instructions:
            emo = EmotionBody(mode="text", text=body.instructions)
        emotion, emotion_audio = EmotionSpec(), None
        if emo is not None:
            vector = emo.vector
            if isinstance(vector, dict):
                unknown = sorted(set(vector) - set(EMOTIONS))
                if unknown:
                    raise ValidationError("emotion.vector", f"unknown emotions {unknown}; use {', '.join(EMOTIONS)}")
                vector = [vector.get(name, 0.0) for name in EMOTIONS]
            if emo.mode == "audio":
                if emotion_file is not None:
                    emotion_audio = emotion_file
                elif emo.voice:
                    try:
                        emotion_audio = synth.voice_path(emo.voice)
                    except ValidationError as e:
                        raise ValidationError("emotion.voice", str(e).removeprefix("voice: ")) from e
                else:
                    raise ValidationError("emotion.voice", "audio mode needs a saved voice name or an emotion_file upload")
            emotion = EmotionSpec(mode=emo.mode, weight=emo.weight, vector=tuple(vector) if vector is not None else None,
                                  text=emo.text or "", use_random=emo.random)
        given = body.generation.model_dump(exclude_none=True) if body.generation is not None else {}
        return SynthesisRequest(text=body.input, voice=voice, emotion=emotion, generation=GenerationParams(**given),
                                emotion_audio=emotion_audio, output_format=body.response_format,
                                use_glossary=body.use_glossary, speed=body.speed)

    speech_schema = _inline_refs(SpeechBody.model_json_schema())
    multipart_schema = {
        "type": "object",
        "required": ["input"],
        "properties": {
            **{k: v for k, v in speech_schema["properties"].items() if k not in ("emotion", "generation")},
            "emotion": {"type": "string", "description": "the `emotion` object as JSON text"},
            "generation": {"type": "string", "description": "the `generation` object as JSON text"},
            "voice_file": {"type": "string", "format": "binary", "description": "a reference voice (wav, flac, mp3, ogg)"},
            "emotion_file": {"type": "string", "format": "binary", "description": "emotion reference (emotion.mode = audio)"},
        },
    }
    audio_types = {audio_format(name).media_type: {"schema": {"type": "string", "format": "binary"}} for name in FORMAT_NAMES}

    @router.post(
        "/audio/speech",
        summary="Text to speech (OpenAI-compatible)",
        response_class=Response,
        responses={200: {"content": audio_types, "description": "the audio, in `response_format`"},
                   422: {"description": "a field is invalid; `error.param` names it"},
                   429: {"description": "the queue is full; see Retry-After"},
                   503: {"description": "the engine is still loading"}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": speech_schema},
            "multipart/form-data": {"schema": multipart_schema}}}},
    )
    async def speech(http: Request) -> Response:
        synth = get_synthesizer()
        created: list[Path] = []
        try:
            voice_file = emotion_file = None
            content_type = http.headers.get("content-type", "").split(";")[0].strip().lower()
            try:
                if content_type == "multipart/form-data":
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
                    fields = {k: v for k, v in fields.items() if v is not None and v != ""}
                else:
                    try:
                        fields = json.loads(await read_body(http, JSON_LIMIT_BYTES, "body"))
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise _BadField(422, "body", f"body: is not valid JSON ({e})") from e
                body = SpeechBody.model_validate(fields)
            except PydanticError as e:
                return _pydantic_error(e)
            except _BadField as e:
                return error_response(e.status, str(e), e.field)
            try:
                request = build_request(synth, body, voice_file, emotion_file)
            except (ValidationError, NotReady) as e:
                return service_error(e)
            if body.stream:
                return await _stream(http, synth, request, created)
            cancel = threading.Event()
            job = _start(synth, request, cancel)
            if not await _wait_or_disconnect(http, job, cancel):
                return Response(status_code=499)  # nobody reads it; uvicorn drops it
            try:
                result: SynthesisResult = job.result()
            except Cancelled:
                return Response(status_code=499)
            except Exception as e:
                return service_error(e)
            return Response(result.path.read_bytes(), media_type=audio_format(result.format).media_type,
                            headers=_result_headers(result))
        finally:
            _remove(created)  # empty when a stream took the uploads over

    @router.get("/voices", summary="List the saved voices")
    def list_voices() -> dict:
        voices, problems = get_synthesizer().voices.scan()
        return {"object": "list", "data": [v.as_dict() for v in voices],
                "problems": [{"name": p.name, "message": p.message} for p in problems]}

    @router.get("/voices/{name}", summary="One saved voice's details")
    def get_voice(name: str) -> Response:
        try:
            return JSONResponse(get_synthesizer().voices.get(name).as_dict())
        except FileNotFoundError as e:
            return error_response(404, f"name: {e}", "name")
        except ValueError as e:
            return error_response(422, f"name: {e}", "name")

    @router.post(
        "/voices",
        summary="Save an uploaded reference voice",
        status_code=201,
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["name", "file"],
            "properties": {
                "name": {"type": "string", "description": "letters, digits, space, - and _; other characters become _"},
                "file": {"type": "string", "format": "binary", "description": "the reference (wav, flac, mp3, ogg)"},
                "tags": {"type": "string", "description": "comma-separated"},
                "note": {"type": "string"},
                "overwrite": {"type": "boolean", "description": "replace a voice of the same name (default false)"},
            }}}}}},
    )
    async def create_voice(http: Request) -> Response:
        synth = get_synthesizer()
        created: list[Path] = []
        try:
            if http.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
                return error_response(422, "file: send multipart/form-data with `name` and `file`", "file")
            try:
                form = await read_form(http)
                try:
                    path = await save_upload(form, "file", created)
                    name, tags, note, overwrite = (form.get(k) for k in ("name", "tags", "note", "overwrite"))
                finally:
                    await form.close()
                for field, value in (("name", name), ("tags", tags), ("note", note), ("overwrite", overwrite)):
                    if value is not None and not isinstance(value, str):
                        raise _BadField(422, field, f"{field}: must be text, not a file")
                if path is None:
                    raise _BadField(422, "file", "file: upload the reference audio as `file`")
                if not name:
                    raise _BadField(422, "name", "name: is required")
                if (overwrite or "false").strip().lower() not in ("true", "false", "1", "0"):
                    raise _BadField(422, "overwrite", f"overwrite: must be true or false, got {overwrite!r}")
            except _BadField as e:
                return error_response(e.status, str(e), e.field)
            try:
                voice, replaced = await asyncio.to_thread(
                    synth.save_voice, name, path, tags=tags or (), note=note or "",
                    overwrite=(overwrite or "").strip().lower() in ("true", "1"))
            except (ValidationError, VoiceExists) as e:
                return service_error(e)
            return JSONResponse(voice.as_dict(), status_code=200 if replaced else 201)
        finally:
            _remove(created)

    @router.delete("/voices/{name}", summary="Delete a saved voice")
    def delete_voice(name: str) -> Response:
        try:
            deleted = get_synthesizer().voices.delete(name)
        except ValueError as e:
            return error_response(422, f"name: {e}", "name")
        if not deleted:
            return error_response(404, f"name: no voice named {name!r}", "name")
        return JSONResponse({"name": name, "deleted": True})

    return router


async def _stream(http: Request, synth: Synthesizer, request: SynthesisRequest, created: list[Path]) -> Response:
    """Start the job; answer once the first audio (or an error) is there, then send the rest."""
    fmt = audio_format(request.output_format)
    progressive = fmt.name in STREAMED_PROGRESSIVELY
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    on_audio = (lambda chunk: loop.call_soon_threadsafe(chunks.put_nowait, chunk)) if progressive else None
    job = _start(synth, request, cancel, on_audio)

    first = asyncio.ensure_future(chunks.get())
    while not (first.done() or job.done()):
        await asyncio.wait({first, job}, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
        if not (first.done() or job.done()) and await http.is_disconnected():
            cancel.set()
            first.cancel()
            return Response(status_code=499)
    if not first.done():
        first.cancel()
        if job.exception() is not None:
            if isinstance(job.exception(), Cancelled):
                return Response(status_code=499)
            return service_error(job.exception())

    # From here the stream owns the uploads and removes them when it ends.
    uploads = list(created)
    created.clear()

    async def body():
        try:
            if not progressive:  # the whole file, once done
                result: SynthesisResult = await job
                yield result.path.read_bytes()
                return
            if fmt.name == "wav":
                yield wav_stream_header(OUTPUT_SAMPLE_RATE)
            pending = first if first.done() else None
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(chunks.get())
                    await asyncio.wait({pending, job}, return_when=asyncio.FIRST_COMPLETED)
                if pending.done():
                    yield encode(pending.result(), OUTPUT_SAMPLE_RATE, "pcm")
                    pending = None
                    continue
                pending.cancel()
                break
            while not chunks.empty():  # audio queued just before the job ended
                yield encode(chunks.get_nowait(), OUTPUT_SAMPLE_RATE, "pcm")
            if job.exception() is not None:
                # The status line is long gone; ending the stream early is all that is left to say.
                log.error("streamed synthesis failed after sending audio: %s", job.exception())
        finally:
            if not job.done():  # the client went away mid-stream: stop the work
                cancel.set()
            _remove(uploads)

    headers = {"X-Audio-Streaming": "progressive" if progressive else "buffered",
               "X-Audio-Sample-Rate": str(fmt.sample_rate or OUTPUT_SAMPLE_RATE)}
    return StreamingResponse(body(), media_type=fmt.media_type, headers=headers)


def _result_headers(result: SynthesisResult) -> dict[str, str]:
    return {"X-Output-File": result.path.name, "X-Engine": result.engine.encode("ascii", "replace").decode(),
            "X-Audio-Duration": f"{result.duration_s:.3f}"}


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _inline_refs(schema: dict) -> dict:
    """pydantic puts nested models in "$defs" and points at them; OpenAPI's requestBody schema
    must stand alone, so replace every reference with the definition itself."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)

