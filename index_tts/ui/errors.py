"""The one place where the service's typed errors become what the page shows.

Every handler a button calls is wrapped in `@shows_errors`: a refusal (bad input, not found,
a conflict, busy, not ready, timed out) becomes a `gr.Error` toast with the service's message,
which names the field; anything else is a bug, logged with its trace and reported plainly.
"""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from index_tts.service import NotFound, ServiceError

log = logging.getLogger(__name__)

def message_of(error: Exception) -> str | None:
    """The user-facing text of a refusal (it names the field); None for an unexpected error (a bug)."""
    if isinstance(error, NotFound):
        return f"{error.field}: {error.kind} {error.name!r} not found"
    if isinstance(error, ServiceError):
        return str(error)
    return None


def shown(handler, error: Exception) -> gr.Error:
    message = message_of(error)
    if message is not None:
        return gr.Error(message, print_exception=False)
    log.exception("%s failed", handler.__name__)
    return gr.Error(f"{handler.__name__.replace('_', ' ')} failed: {type(error).__name__}: {error}")


def shows_errors(handler):
    """The handler with its refusals as messages; a generator (streamed updates) stays one."""
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def streaming(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:
                raise shown(handler, e) from e
        return streaming

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            raise shown(handler, e) from e
    return wrapper
