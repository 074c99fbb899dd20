"""Running a synthesis off the event loop, noticing a client that hangs up, and streaming the
audio as each segment finishes."""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from index_tts.api.errors import service_error
from index_tts.service import OUTPUT_SAMPLE_RATE, SynthesisRequest, SynthesisResult, Synthesizer, audio_format, encode

log = logging.getLogger(__name__)

STREAMED_PROGRESSIVELY = ("pcm", "wav")  # others are sent whole once done (see docs/api.md)


def start(synth: Synthesizer, request: SynthesisRequest, cancel: threading.Event,
          on_audio: Callable[[np.ndarray], None] | None = None) -> asyncio.Future:
    """Run synthesize() in its own thread (so admission control, not a thread pool, decides who
    waits); the future completes on the event loop."""
    return run_off_loop(lambda: synth.synthesize(request, on_audio=on_audio, cancel=cancel))


def run_off_loop(work: Callable[[], Any], name: str = "api-synthesis") -> asyncio.Future:
    """work() in its own thread; the future completes on the event loop with its result or error."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    # A client that left never reads the outcome; mark it read so asyncio does not log it.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def settle(outcome: Any, failed: bool) -> None:
        if not future.done():
            future.set_exception(outcome) if failed else future.set_result(outcome)

    def thread() -> None:
        try:
            result = work()
        except BaseException as e:  # handed to the request's coroutine, which answers for it
            loop.call_soon_threadsafe(settle, e, True)
        else:
            loop.call_soon_threadsafe(settle, result, False)

    threading.Thread(target=thread, name=name, daemon=True).start()
    return future


async def wait_or_disconnect(http: Request, future: asyncio.Future, cancel: threading.Event) -> bool:
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


def result_headers(result: SynthesisResult) -> dict[str, str]:
    return {"X-Output-File": result.path.name, "X-Engine": result.engine.encode("ascii", "replace").decode(),
            "X-Audio-Duration": f"{result.duration_s:.3f}"}


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def stream(http: Request, synth: Synthesizer, request: SynthesisRequest, created: list[Path]) -> Response:
    """Start the job; answer once the first audio (or an error) is there, then send the rest."""
    fmt = audio_format(request.output_format)
    progressive = fmt.name in STREAMED_PROGRESSIVELY
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    on_audio = (lambda chunk: loop.call_soon_threadsafe(chunks.put_nowait, chunk)) if progressive else None
    job = start(synth, request, cancel, on_audio)

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
            remove(uploads)

    headers = {"X-Audio-Streaming": "progressive" if progressive else "buffered",
               "X-Audio-Sample-Rate": str(fmt.sample_rate or OUTPUT_SAMPLE_RATE)}
    return StreamingResponse(body(), media_type=fmt.media_type, headers=headers)
