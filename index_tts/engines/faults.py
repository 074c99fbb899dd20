"""A TEST AID, off unless webui.py gets `--fault-injection`: wraps an engine so that markers in
the text make it misbehave on purpose, the way a real engine can (an exception mid-request, a
generation that takes long). The fault tests start a real server with it; nobody else should.

    {{fault:raise}}      report some progress, then raise RuntimeError("injected engine fault")
    {{fault:slow=S}}     spend S seconds "generating" (reporting progress every 50 ms), then speak

Markers are removed before the wrapped engine sees the text.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from index_tts.engines.base import Engine, EngineOutput, EngineRequest, ProgressFn, SegmentFn, no_progress

_MARKER = re.compile(r"\{\{fault:(raise|slow=(\d+(?:\.\d+)?))\}\}")


class InjectedFault(RuntimeError):
    pass


class FaultInjectingEngine:
    def __init__(self, inner: Engine):
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.device = inner.device

    def segments(self, text: str, max_tokens: int):
        return self.inner.segments(_MARKER.sub("", text), max_tokens)

    def synthesize(self, request: EngineRequest, progress: ProgressFn = no_progress,
                   on_segment: SegmentFn | None = None) -> EngineOutput:
        faults = _MARKER.findall(request.text)
        request = replace(request, text=_MARKER.sub("", request.text).strip() or "fault")
        for kind, seconds in faults:
            if kind == "raise":
                progress(0.3, "speaking 1/2")
                raise InjectedFault("injected engine fault")
            end = time.monotonic() + float(seconds)
            while (left := end - time.monotonic()) > 0:
                progress(0.5 * (1 - left / float(seconds)), "slowly generating (injected)")
                time.sleep(min(0.05, left))
        if on_segment is None:
            return self.inner.synthesize(request, progress)
        return self.inner.synthesize(request, progress, on_segment=on_segment)


def with_fault_injection(factory):
    """An engine factory whose engines are wrapped in FaultInjectingEngine."""
    def load(progress: ProgressFn):
        return FaultInjectingEngine(factory(progress))
    load.__module__ = getattr(factory, "__module__", __name__)  # keeps the quick-voice banner right
    return load
