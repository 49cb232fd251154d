"""What the client raises: one base class, `NamegenError`, for every failure of a call."""

from __future__ import annotations

from typing import Any


class NamegenError(Exception):
    """A call failed. `status` is the HTTP status when the server answered, else None."""

    status: int | None = None
    detail: Any = None
    request_id: str | None = None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class NamegenStatusError(NamegenError):
    """The server answered 4xx or 5xx. `detail` is its `detail` field (a string, or FastAPI's list of
    validation errors for a 422) or the body's text; `request_id` its X-Request-ID."""

    def __init__(self, status: int, detail: Any, request_id: str | None = None) -> None:
        self.status = status
        self.detail = detail
        self.request_id = request_id
        super().__init__(f"HTTP {status}: {self.message}")

    @property
    def message(self) -> str:
        if isinstance(self.detail, list):  # FastAPI's 422: [{"loc": [...], "msg": ...}, ...]
            return "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', []) if p != 'body')}: {e.get('msg')}"
                if isinstance(e, dict)
                else str(e)
                for e in self.detail
            )
        return str(self.detail)


class NamegenConnectionError(NamegenError):
    """The server could not be reached (refused, reset, DNS), after the retries."""


class NamegenTimeoutError(NamegenConnectionError):
    """The server did not answer within the client's timeout (not retried: the work may be running)."""
