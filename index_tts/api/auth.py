"""The optional shared access token, as a plain ASGI middleware (so it also covers Gradio's
streaming and websocket routes)."""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

TOKEN_COOKIE = "index_tts_token"
OPEN_PATHS = frozenset({"/healthz"})


class TokenAuthMiddleware:
    """Requires a shared token on every route except /healthz (a plain ASGI middleware, so it
    also covers Gradio's streaming and websocket routes).

    Accepted: `Authorization: Bearer <token>`, or the cookie set after visiting `/?token=<token>`
    once in a browser (which then redirects to the same URL without the token).
    """

    def __init__(self, app, token: str):
        if not token:
            raise ValueError("an empty token would let everyone in")
        self.app = app
        self.token = token

    def _matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope.get("path") in OPEN_PATHS:
            return await self.app(scope, receive, send)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is the client's problem; treat it as absent
            cookie = SimpleCookie()
        from_cookie = cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None
        if self._matches(bearer) or self._matches(from_cookie):
            return await self.app(scope, receive, send)

        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), None)
        if scope["type"] == "http" and self._matches(given):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            await send({
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")),
                ],
            })
            await send({"type": "http.response.body", "body": b""})
            return

        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"detail": "a token is required: send Authorization: Bearer <token>, or open /?token=<token> once"}'
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
        })
        await send({"type": "http.response.body", "body": body})
