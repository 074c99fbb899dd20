"""HTTP errors: the one place that maps the service's typed errors (and malformed bodies) to
status codes, in OpenAI's shape `{"error": {"message", "type", "param", "code"}}` where `param`
names the field.

    ValidationError -> 422    NotFound -> 404    Conflict -> 409    Busy -> 429 (+ Retry-After)
    NotReady -> 503           TimedOut -> 504    Cancelled -> 499 (nobody is listening)
    BadRequest (the body itself: not UTF-8, nested too deep, a duplicate key, a lone surrogate) -> 400
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError as PydanticError
from starlette.exceptions import HTTPException

from index_tts.service import Busy, Cancelled, Conflict, NotFound, NotReady, TimedOut, ValidationError

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32   # a speech request nests three levels; anything deeper is not one


class BadRequest(Exception):
    """The HTTP request itself is unusable (status 400, 413, or 422 for a form field's type)."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message if message.startswith(field) else f"{field}: {message}")
        self.status, self.field = status, field


def _printable(text: str) -> str:
    """A message that can always be sent: lone surrogates (from the client's input) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": _printable(message), "type": kind,
                                   "param": _printable(param) if param else param, "code": None}},
                        status_code=status, headers=headers)


def pydantic_error(e: PydanticError | RequestValidationError, prefix: str = "") -> JSONResponse:
    first = e.errors()[0]
    parts = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = ".".join(filter(None, [prefix, *parts])) or "body"
    return error_response(422, f"{field}: {first.get('msg', 'invalid')}", field)


def service_error(e: BaseException) -> Response:
    """Every error a route raises, as its HTTP answer. Anything unexpected is a logged 500."""
    if isinstance(e, ValidationError):
        return error_response(422, str(e), e.field)
    if isinstance(e, BadRequest):
        return error_response(e.status, str(e), e.field)
    if isinstance(e, NotFound):
        return error_response(404, str(e), e.field, kind="not_found_error")
    if isinstance(e, Conflict):
        return error_response(409, f"{e} (send overwrite=true to replace it)", e.field)
    if isinstance(e, Busy):
        return error_response(429, str(e), kind="rate_limit_error", headers={"Retry-After": str(e.retry_after_s)})
    if isinstance(e, NotReady):
        headers = {"Retry-After": "2"} if e.state == "loading" else None
        return error_response(503, str(e), kind="server_error", headers=headers)
    if isinstance(e, TimedOut):
        return error_response(504, str(e), kind="server_error")
    if isinstance(e, Cancelled):
        return Response(status_code=499)  # the client left; uvicorn drops the answer
    if isinstance(e, (PydanticError, RequestValidationError)):
        return pydantic_error(e)
    log.error("request failed", exc_info=(type(e), e, e.__traceback__))
    return error_response(500, f"synthesis failed: {type(e).__name__}: {e}", kind="server_error")


class ErrorMappingRoute(APIRoute):
    """Every route's errors go through service_error(): handlers simply raise."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException:
                raise  # already an HTTP answer (FastAPI's own)
            except Exception as e:  # noqa: BLE001 (service_error logs what it does not know)
                return service_error(e)

        return route


# ---------------------------------------------------------------------------------------------
# JSON bodies, parsed strictly

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def parse_json(raw: bytes, field: str = "body") -> Any:
    """A JSON body, or BadRequest(400) naming what is wrong with it: not UTF-8, nested deeper than
    MAX_JSON_DEPTH, a key given twice, a lone surrogate escape ("\\ud800"). Text that is not
    JSON at all is a 422, like any other invalid field."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(400, field, f"is not valid UTF-8 (byte {e.start})") from e
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    if deepest > MAX_JSON_DEPTH:
        raise BadRequest(400, field, f"is nested {deepest} levels deep; at most {MAX_JSON_DEPTH}")

    def unique(pairs: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise BadRequest(400, key, f"{key[:40]!r} is given twice")
            seen[key] = value
        return seen

    try:
        value = json.loads(text, object_pairs_hook=unique)
    except (json.JSONDecodeError, RecursionError) as e:
        raise BadRequest(422, field, f"is not valid JSON ({getattr(e, 'msg', e)})") from e
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise BadRequest(400, field, f"is not usable JSON ({e})") from e
    _refuse_surrogates(value, "")
    return value


def _refuse_surrogates(value: Any, path: str) -> None:
    """Lone surrogates (a "\\udXXX" escape alone) are not text; name where one is."""
    if isinstance(value, str):
        if any("\ud800" <= c <= "\udfff" for c in value):
            raise BadRequest(400, path or "body", "contains an invalid character (a lone surrogate escape)")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else key
            _refuse_surrogates(key, name)
            _refuse_surrogates(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_surrogates(item, f"{path}.{index}" if path else str(index))
