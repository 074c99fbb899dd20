"""The service's errors. Front ends map them once: the UI to a message, HTTP to a status code.

    ValidationError (a ValueError) - the request is bad; `.field` names the culprit.
    NotFound (a LookupError)       - a named voice, preset, history entry... does not exist.
    Conflict (a FileExistsError)   - a name is taken and the caller did not ask to replace it.
    NotReady                       - the engine is still loading (or failed to); carries progress.
    Busy                           - the queue is full; carries how many seconds to wait.
    Cancelled                      - the caller asked to stop (e.g. a client hung up); no file written.
    TimedOut                       - the request ran past `Limits.request_timeout_s`; no file written.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Literal

from index_tts.storage import VoiceExists

State = Literal["loading", "ready", "failed"]


class ValidationError(ValueError):
    """A request field is invalid. `field` is its dotted name, e.g. "voice" or "generation.top_p"."""

    def __init__(self, field: str, message: str):
        super().__init__(message if message.startswith(field) else f"{field}: {message}")
        self.field = field


class NotReady(RuntimeError):
    """The engine cannot take requests yet (loading) or at all (failed)."""

    def __init__(self, state: State, progress: float, message: str):
        super().__init__(message)
        self.state = state
        self.progress = progress


class Busy(RuntimeError):
    """Too many requests are waiting; the caller should retry after `retry_after_s` seconds."""

    def __init__(self, retry_after_s: int, message: str):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFound(LookupError):
    """A named thing (voice, preset, history entry, emotion preset, glossary term) does not exist.
    `field` names the request field that named it (for the HTTP `param` and the UI message)."""

    def __init__(self, kind: str, name: object, field: str = "name"):
        super().__init__(f"{field}: no {kind} named {str(name)[:80]!r}")
        self.kind, self.name, self.field = kind, name, field


class Conflict(FileExistsError):
    """Saving or renaming would replace something of the same name and the caller did not ask to.
    (A FileExistsError, so callers written against the storage layer's VoiceExists keep working.)"""

    def __init__(self, field: str, message: str):
        super().__init__(message if message.startswith(field) else f"{field}: {message}")
        self.field = field


AlreadyExists = Conflict


class Cancelled(RuntimeError):
    """The caller cancelled the request (its cancel event was set); nothing was written."""


class TimedOut(RuntimeError):
    """The request took longer than `Limits.request_timeout_s`; nothing was written."""


# What a front end catches to show a message (UI) or map to a status (HTTP).
ServiceError = (ValidationError, NotFound, Conflict, Busy, NotReady, TimedOut, Cancelled)


@contextmanager
def named(kind: str, name: object, field_name: str = "name"):
    """Storage errors about a named thing as the service's typed errors."""
    try:
        yield
    except VoiceExists as e:
        raise Conflict(field_name, str(e)) from e
    except FileNotFoundError as e:
        raise NotFound(kind, name, field_name) from e
    except ValueError as e:
        raise ValidationError(field_name, str(e)) from e


def rethrow_named(check: Callable[[], None], default_field: str) -> None:
    """Run a dataclass's own validate(); re-raise its ValueError as a ValidationError whose field
    is the dotted name its message starts with ("generation.top_p must be ...")."""
    try:
        check()
    except ValidationError:
        raise
    except (ValueError, TypeError, OverflowError) as e:  # OverflowError: an int too large for a float
        message = str(e)
        first = message.split(" ", 1)[0]
        name = first if first.startswith(default_field + ".") or first == default_field else default_field
        raise ValidationError(name, message) from e

