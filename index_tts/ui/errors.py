"""The one place where the service's typed errors become what the page shows.

Every handler a button calls is wrapped in `@shows_errors`: a refusal (bad input, not found,
a conflict, busy, not ready, timed out) becomes a `gr.Error` toast with the service's message,
which names the field; anything else is a bug, logged with its trace and reported plainly.
"""

from __future__ import annotations

import functools
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


def shows_errors(handler):
    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            message = message_of(e)
            if message is not None:
                raise gr.Error(message, print_exception=False) from e
            log.exception("%s failed", handler.__name__)
            raise gr.Error(f"{handler.__name__.replace('_', ' ')} failed: {type(e).__name__}: {e}") from e
    return wrapper
