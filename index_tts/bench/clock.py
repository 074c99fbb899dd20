"""Per-stage wall time, by wrapping methods of the loaded engine's modules for one run.

Stages are exclusive: time spent in a stage nested inside another (say the speaker conditioning
inside the voice prompt) counts only for the inner one, so the stages add up to at most the total.
Probes (per-call forward times such as one decode step or one DiT forward) are inclusive counters
beside the stages; they do not affect them.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import defaultdict

import torch

STAGES = ("reference", "conditioning", "gpt_prefill", "gpt_decode", "latent", "dit", "vocoder")


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class StageClock:
    def __init__(self):
        self.stages: dict[str, float] = defaultdict(float)
        self.probes: dict[str, list[float]] = defaultdict(list)
        self._stack: list[list] = []  # [name, start, time spent in nested stages]

    @contextlib.contextmanager
    def stage(self, name: str):
        _sync()
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            _sync()
            self._stack.pop()
            spent = time.perf_counter() - frame[1]
            self.stages[name] += spent - frame[2]
            if self._stack:
                self._stack[-1][2] += spent

    @contextlib.contextmanager
    def probe(self, name: str):
        _sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            self.probes[name].append(time.perf_counter() - start)

    def wrap(self, fn, name: str, kind: str = "stage"):
        timer = self.stage if kind == "stage" else self.probe

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with timer(name):
                return fn(*args, **kwargs)

        return timed


@contextlib.contextmanager
def patched(targets: list[tuple[object, str, object]]):
    """Set attributes (obj, name, value) for the block, restoring the previous state after."""
    saved = []
    for obj, name, value in targets:
        had = name in vars(obj)
        saved.append((obj, name, had, vars(obj).get(name)))
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, had, old in reversed(saved):
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)


def instrument(engine, clock: StageClock):
    """Time our engine's stages (a context manager). The engine code is untouched: instance
    methods are shadowed by timed wrappers, and the engine module's `generate` function too."""
    from index_tts.engines import indextts2

    gpt, s2mel = engine.gpt, engine.s2mel
    targets = [
        (engine, "voice_prompt", clock.wrap(engine.voice_prompt, "reference")),
        (engine, "emotion_vector", clock.wrap(engine.emotion_vector, "conditioning")),
        (gpt, "get_conditioning", clock.wrap(gpt.get_conditioning, "conditioning")),
        (gpt, "get_emovec", clock.wrap(gpt.get_emovec, "conditioning")),
        (indextts2, "generate", clock.wrap(indextts2.generate, "gpt_decode")),  # minus the prefill
        (gpt, "prefill", clock.wrap(gpt.prefill, "gpt_prefill")),
        (gpt, "decode_step", clock.wrap(gpt.decode_step, "gpt_decode_forward", "probe")),
        (gpt, "forward_latent", clock.wrap(gpt.forward_latent, "latent")),
        (s2mel.cfm, "inference", clock.wrap(s2mel.cfm.inference, "dit")),
        (s2mel.cfm.estimator, "forward", clock.wrap(s2mel.cfm.estimator.forward, "dit_forward", "probe")),
        (engine.w2v, "forward", clock.wrap(engine.w2v.forward, "w2v_bert", "probe")),
        (engine.bigvgan, "forward", clock.wrap(engine.bigvgan.forward, "vocoder")),
    ]
    return patched(targets)
