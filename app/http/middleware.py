"""Pure-ASGI middleware in front of the routes: the request id, POST bodies must be JSON (415
otherwise), HEAD is GET without the body.

X-Request-ID: the client's when it is safe to echo and log, else a fresh one; on every response.
Pure ASGI (no BaseHTTPMiddleware): the id lives in a context variable for the request's task, so
uvicorn's access-log line for the request, written while the response starts, carries it
(`app.http.logs.RequestIdFilter`).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128
# Letters, digits and . _ : - (UUIDs, ULIDs, trace ids): nothing that could forge a log line or header.
SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


def new_request_id() -> bytes:
    return os.urandom(16).hex().encode()


class RequestID:
    """Take or make the request's id, expose it to logging, and return it as `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = next((v for k, v in scope["headers"] if k == HEADER), None)
        if request_id is None or not SAFE.fullmatch(request_id):
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = text = request_id.decode("ascii")
        token = REQUEST_ID.set(text)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class JSONBodiesOnly:
    """Answer 415 to a POST to one of `paths` whose Content-Type is not JSON, before any parsing. A
    POST elsewhere goes on to routing, which answers 405 (or 404) as it would to any other body."""

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            media_type = content_type.split(b";")[0].strip().lower().decode("latin-1")
            if media_type != "application/json" and not media_type.endswith("+json"):
                detail = (
                    f"send the body as JSON, 'Content-Type: application/json' (got {media_type or 'none'})"
                )
                body = orjson.dumps({"detail": detail})
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 415, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class HeadAsGet:
    """HEAD on any GET endpoint: the GET's status and headers, no body (FastAPI routes only GET)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
