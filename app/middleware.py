"""Pure-ASGI guard in front of the routes: POST bodies must be JSON (415 otherwise)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send


class JSONBodiesOnly:
    """Answer 415 to a POST whose Content-Type is not JSON, before any parsing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
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
