"""RayRunner: a clip Runner (service/clips.py) that fans clips out to Ray actors.

Each actor holds its own Synthesizer (its data folder a temporary one) with the engine that
`choose_engine(**engine_kwargs)` gives on its node, one per GPU on CUDA and CPU actors otherwise,
and renders with render_clip, as LocalRunner does: a clip sounds the same wherever it is rendered.

- Voices travel as bytes: each reference is put in the object store once per voice_sha, and an
  actor writes it to a local file (named by its hash) the first time it needs it. A clip's key
  does not depend on its path, so the store keeps what the actors return under the same keys.
- One clip per actor at a time, so a slow actor never holds a queue of others' work.
- An actor that dies (killed, out of memory, its node gone) is replaced and its clip is rendered
  by another; a clip whose actors keep dying stops the run after MAX_ATTEMPTS.
- Every actor must run the engine the clips were made for (`Clip.engine`): a node that lacks the
  weights would otherwise store another engine's audio under the clip's key.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from index_tts.engines.base import ProgressFn, no_progress
from index_tts.fileio import atomic_write_bytes
from index_tts.scale.cluster import connect, pack_error, placement, unpack_error
from index_tts.service import Synthesizer, choose_engine
from index_tts.service.clips import Check, Clip, render_clip

MAX_ATTEMPTS = 3     # renders of one clip cut short by a dying actor before the run gives up
WAIT_S = 0.2         # how often the run calls check() while clips render


class ClipWorker:
    """One engine on one Ray worker (made an actor by RayRunner)."""

    def __init__(self, engine_kwargs: dict):
        self.folder = Path(tempfile.mkdtemp(prefix="index-tts-actor-"))
        factory, reason, _ = choose_engine(**engine_kwargs)
        self.synth = Synthesizer(factory, data_dir=self.folder / "data", selection_reason=reason).start()

    def ready(self) -> dict:
        """Waits for the engine; what it is and where it runs (raises if it failed to load)."""
        import ray

        state = self.synth.wait_until_loaded()
        status = self.synth.status()
        if state != "ready":
            raise RuntimeError(f"the engine failed to load on {ray.util.get_node_ip_address()}: {status.error}")
        return {"engine": f"{status.engine} {status.version}".strip(), "device": status.device,
                "node": ray.util.get_node_ip_address(), "pid": os.getpid()}

    def render(self, clip: Clip, voice: list) -> tuple[str, object]:
        """("ok", int16 audio) or ("error", pack_error(...)); `voice` is [ObjectRef of its bytes],
        nested so that Ray fetches it only when this worker lacks the file."""
        import ray

        try:
            self.synth.wait_until_loaded()   # a replacement actor gets its first clip while it loads
            status = self.synth.status()
            if clip.engine != f"{status.engine} {status.version}".strip():
                raise RuntimeError(f"clip {clip.key} is for {clip.engine!r}, but this Ray actor runs "
                                   f"{status.engine or status.state!r} (give every node the same model store)")
            path = self.folder / "voices" / f"{clip.voice_sha}{Path(clip.voice_path).suffix or '.wav'}"
            if not path.is_file():
                atomic_write_bytes(path, ray.get(voice[0]))
            return "ok", render_clip(self.synth, replace(clip, voice_path=str(path)))
        except Exception as e:  # returned, not raised: the service's errors do not unpickle
            return "error", pack_error(e)


class RayRunner:
    """Renders clips on `actors` Ray actors (default: one per GPU, or CPU actors sharing the
    CPUs). `address`: "local" starts Ray on this machine, anything else joins that cluster.
    Constructing it starts the actors and waits until each has loaded its engine; with "local",
    construct it in the main thread (cluster.connect says why)."""

    def __init__(self, address: str, engine_kwargs: dict, *, actors: int | None = None,
                 progress: ProgressFn = no_progress):
        import ray

        self.progress = progress
        self._started_ray = connect(address)
        self._engine_kwargs = dict(engine_kwargs)
        self._voices: dict[str, object] = {}   # voice_sha -> ObjectRef of the reference's bytes
        self.replaced = 0                       # actors that died and were replaced
        try:
            self._placement = placement(actors)
            self._remote = ray.remote(ClipWorker).options(num_gpus=self._placement.num_gpus,
                                                          num_cpus=self._placement.num_cpus)
            self.actors = [self._start_actor() for _ in range(self._placement.engines)]
            self.workers = ray.get([actor.ready.remote() for actor in self.actors])
        except BaseException:
            self.close()
            raise
        self.engine = self.workers[0]["engine"]
        if any(w["engine"] != self.engine for w in self.workers):
            engines = sorted({f"{w['engine']} on {w['node']}" for w in self.workers})
            self.close()
            raise RuntimeError(f"the Ray actors run different engines ({'; '.join(engines)}): give every node "
                               "the same model store (docs/scale-out.md)")

    def _start_actor(self):
        return self._remote.remote(self._engine_kwargs)

    def _voice(self, clip: Clip) -> object:
        import ray

        if clip.voice_sha not in self._voices:
            self._voices[clip.voice_sha] = ray.put(Path(clip.voice_path).read_bytes())
        return self._voices[clip.voice_sha]

    def run(self, clips: list[Clip], on_done: Callable[[Clip, np.ndarray], None], check: Check) -> None:
        import ray
        from ray.exceptions import ActorUnschedulableError, ObjectLostError, RayActorError, WorkerCrashedError

        if not self.actors:
            raise RuntimeError("this RayRunner is closed")
        wrong = [clip for clip in clips if clip.engine != self.engine]
        if wrong:
            raise ValueError(f"clip {wrong[0].key} is for {wrong[0].engine!r}, but the Ray actors run {self.engine!r}")
        todo, idle, running = deque(clips), list(self.actors), {}
        attempts: Counter[str] = Counter()
        finished = 0
        try:
            while todo or running:
                check()
                while todo and idle:
                    actor, clip = idle.pop(), todo.popleft()
                    running[actor.render.remote(clip, [self._voice(clip)])] = (actor, clip)
                done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    actor, clip = running.pop(ref)
                    try:
                        outcome, value = ray.get(ref)
                    except (RayActorError, ActorUnschedulableError, WorkerCrashedError, ObjectLostError) as e:
                        attempts[clip.key] += 1
                        if attempts[clip.key] >= MAX_ATTEMPTS:
                            raise RuntimeError(f"clip {clip.key}: {MAX_ATTEMPTS} Ray actors died rendering it ({e})") from e
                        idle.append(self._replace(actor))
                        todo.appendleft(clip)
                        continue
                    if outcome == "error":
                        raise unpack_error(value)
                    idle.append(actor)
                    on_done(clip, value)
                    finished += 1
                    self.progress(finished / len(clips), f"{finished} of {len(clips)} clips rendered on Ray")
        finally:
            for ref in running:  # stopped early: what has not started need not run
                ray.cancel(ref)

    def _replace(self, dead) -> object:
        import ray

        ray.kill(dead)  # it may be merely unreachable: make sure it renders nothing more
        fresh = self._start_actor()
        self.actors[self.actors.index(dead)] = fresh
        self.replaced += 1
        return fresh

    def close(self) -> None:
        """Stop the actors, and Ray itself when this runner started it."""
        import ray

        for actor in getattr(self, "actors", []):
            ray.kill(actor)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> "RayRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
