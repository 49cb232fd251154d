"""Pure-ASGI guards in front of the routes: POST bodies must be JSON (415 otherwise), HEAD is GET
without the body."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
