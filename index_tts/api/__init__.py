"""The HTTP API, next to the Gradio app. It talks to the service only (index_tts.service).

    health.py     GET /healthz, GET /readyz
    auth.py       the optional access token (an ASGI middleware)
    openai.py     the OpenAI-compatible /v1 routes (speech, voices)
    schema.py     their request bodies and OpenAPI schemas
    streaming.py  synthesis off the event loop, hang-up detection, streamed audio
    errors.py     the one mapping of service errors (and malformed bodies) to status codes
"""

from index_tts.api.auth import TokenAuthMiddleware
from index_tts.api.health import make_router
from index_tts.api.openai import make_openai_router

__all__ = ["TokenAuthMiddleware", "make_router", "make_openai_router"]
