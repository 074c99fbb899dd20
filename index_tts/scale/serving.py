"""The studio's engine as N replicas on Ray Serve (`webui.py --ray ADDRESS --replicas N`, or
`python -m index_tts serve ...`).

The design: the launcher's process keeps everything but the engine. Its Synthesizer (voices,
presets, history, output files, admission, cancellation) and its front ends (the page, the
OpenAI-compatible API) are the ones a single-machine studio runs; only the engine it loads is
a ServedEngine, whose synthesize() sends the validated EngineRequest (the voice travels as its
samples) to one of N Serve replicas through a deployment handle. Each replica holds the engine
`choose_engine(**engine_kwargs)` builds on its node and renders one request at a time.

- Admission stays the service's: the engine says it runs `parallel` = N requests at once, so the
  Synthesizer lets N render together and admits N * (1 + max_queue) jobs; one more is Busy (HTTP
  429 with Retry-After), as on one machine when its one engine's queue is full.
- Streaming and progress: a replica streams ("progress" | "segment" | "done" | "error") items
  back, so streamed responses send audio as each segment is ready, and every progress report
  runs the job's check(): a cancelled or timed-out request cancels its replica call.
- Errors: the engine's and service's errors are packed on the replica and raised here as
  themselves (cluster.pack_error), so the API answers with the same status codes.
Serve's HTTP proxy is not started: our own uvicorn serves the app; replicas are reached by handle.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time

from index_tts.engines.base import EngineOutput, EngineRequest, ProgressFn, Segment, SegmentFn, no_progress
from index_tts.scale.cluster import LOCAL, connect, pack_error, placement, unpack_error
from index_tts.service import EngineFactory, choose_engine

log = logging.getLogger(__name__)

APP_NAME = "index-tts-studio"
PROGRESS_EVERY_S = 0.25   # a replica sends progress at most this often (and at every new stage)
QUICK_ENGINE_MODULE = "index_tts.engines.quick"


class EngineReplica:
    """One engine in one Serve replica (made a deployment by served_engine)."""

    def __init__(self, engine_kwargs: dict):
        factory, self.reason, _ = choose_engine(**engine_kwargs)
        self.engine = factory(no_progress)
        # Serve sends one request at a time, but a cancelled request's engine call runs on until its
        # next progress report: the next request waits for it here (engines are not thread-safe).
        self.lock = threading.Lock()

    def describe(self) -> dict:
        import ray

        return {"name": self.engine.name, "version": getattr(self.engine, "version", ""),
                "device": getattr(self.engine, "device", ""), "reason": self.reason,
                "quick": type(self.engine).__module__ == QUICK_ENGINE_MODULE, "node": ray.util.get_node_ip_address()}

    def segments(self, text: str, max_tokens: int) -> list[Segment]:
        with self.lock:
            return self.engine.segments(text, max_tokens)

    async def synthesize(self, request: EngineRequest, stream_segments: bool):
        """Yields ("progress", fraction, stage), ("segment", index, pcm, rate) when streaming,
        then ("done", EngineOutput) or ("error", pack_error(...))."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        last = [0.0, ""]

        def put(item: tuple) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        def progress(fraction: float, stage: str) -> None:
            if stop.is_set():
                raise _Stopped()
            now = time.monotonic()
            if stage != last[1] or now - last[0] >= PROGRESS_EVERY_S:
                last[:] = [now, stage]
                put(("progress", fraction, stage))

        def segment(index: int, pcm, rate: int) -> None:
            put(("segment", index, pcm, rate))

        def work() -> None:
            try:
                with self.lock:
                    if stop.is_set():
                        return
                    put(("done", self.engine.synthesize(request, progress, segment if stream_segments else None)))
            except _Stopped:
                pass
            except Exception as e:
                put(("error", pack_error(e)))

        threading.Thread(target=work, name="replica-synthesis", daemon=True).start()
        try:
            while True:
                item = await items.get()
                yield item
                if item[0] in ("done", "error"):
                    return
        finally:
            stop.set()   # cancelled by the caller (or done): the engine stops at its next report


class _Stopped(Exception):
    """The caller cancelled: the replica's engine call ends at its next progress report."""


class ServedEngine:
    """The Engine the launcher's Synthesizer loads: every call goes to a Serve replica."""

    def __init__(self, handle, info: dict, replicas: int, address: str):
        self._handle = handle
        self.name, self.version = info["name"], info["version"]
        self.device = f"{info['device']} x{replicas} (Ray Serve at {address})"
        self.is_quick_voice = info["quick"]
        self.parallel = replicas   # the Synthesizer renders this many requests at once

    def segments(self, text: str, max_tokens: int) -> list[Segment]:
        return self._handle.segments.remote(text, max_tokens).result()

    def synthesize(self, request: EngineRequest, progress: ProgressFn = no_progress,
                   on_segment: SegmentFn | None = None) -> EngineOutput:
        items = self._handle.options(stream=True).synthesize.remote(request, on_segment is not None)
        try:
            for item in items:
                if item[0] == "progress":
                    progress(item[1], item[2])        # runs the job's check(): may raise
                elif item[0] == "segment":
                    on_segment(item[1], item[2], item[3])
                elif item[0] == "error":
                    raise unpack_error(item[1])
                else:
                    return item[1]
        except BaseException:
            items.cancel()
            raise
        raise RuntimeError("the Ray Serve replica ended the request without a result")


def served_engine(address: str, replicas: int | None, engine_kwargs: dict) -> tuple[EngineFactory, str]:
    """Joins Ray (for "local", starts it: call this from the main thread, see cluster.connect) and
    returns an engine factory for the Synthesizer, which runs it in its loading thread (the page
    is up while the replicas load), and why it was chosen."""
    started = connect(address)
    count = "one engine replica per GPU (or per 4 CPUs)" if replicas is None else f"{replicas} engine replicas"

    def load(progress: ProgressFn) -> ServedEngine:
        from ray import serve

        place = placement(replicas)
        progress(0.05, f"starting {place.engines} engine replicas on Ray Serve")
        serve.start(proxy_location="Disabled")
        deployment = serve.deployment(EngineReplica, name="engine", num_replicas=place.engines,
                                      max_ongoing_requests=1,
                                      ray_actor_options={"num_cpus": place.num_cpus, "num_gpus": place.num_gpus})
        handle = serve.run(deployment.bind(dict(engine_kwargs)), name=APP_NAME, route_prefix=None)
        atexit.register(_stop, started)
        info = handle.describe.remote().result()
        log.info("Ray Serve: %d replicas of %s on %s (%s)", place.engines, info["name"], info["device"], info["reason"])
        return ServedEngine(handle, info, place.engines, address)

    where = "a local Ray instance" if address == LOCAL else f"the Ray cluster at {address}"
    return load, f"{count} on Ray Serve in {where}"


def _stop(started_ray: bool) -> None:
    """At exit: our Serve application goes (a cluster's Serve outlives this process otherwise)."""
    import ray
    from ray import serve

    try:
        serve.delete(APP_NAME)
    except Exception:  # the cluster may be gone already; nothing to clean then
        log.debug("could not delete the Serve application", exc_info=True)
    if started_ray:
        serve.shutdown()
        ray.shutdown()
