"""One request with retries: a 503 (the server's queue is full, or it is starting or draining) or a
refused connection is retried after the server's Retry-After, else after a doubling backoff; every
transport failure becomes a `NamegenError`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from namegen_client.errors import NamegenConnectionError, NamegenStatusError, NamegenTimeoutError

RETRY_STATUSES = frozenset({503})


@dataclass(frozen=True)
class Retries:
    """How many times a call is retried, and how long it waits before each retry."""

    max_retries: int = 2
    backoff: float = 0.5  # seconds before the first retry without Retry-After; doubles each time
    max_delay: float = 30.0  # no wait is longer, whatever Retry-After says

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry `attempt` (0 for the first)."""
        wait = _retry_after(response) if response is not None else None
        return min(self.max_delay, wait if wait is not None else self.backoff * 2**attempt)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def checked(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer, or NamegenStatusError."""
    if response.is_error:
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        raise NamegenStatusError(response.status_code, detail, response.headers.get("x-request-id"))
    return response.json()


def _failure(exc: httpx.TransportError, request: str) -> NamegenConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return NamegenTimeoutError(f"{request}: no answer within the timeout ({exc!r})")
    return NamegenConnectionError(f"{request}: cannot reach the server ({exc!r})")


def send(http: httpx.Client, retries: Retries, method: str, path: str, body: Any = None) -> Any:
    for attempt in range(retries.max_retries + 1):
        last = attempt == retries.max_retries
        try:
            response = http.request(method, path, json=body)
        except httpx.ConnectError as exc:
            if last:
                raise _failure(exc, f"{method} {path}") from exc
            time.sleep(retries.delay(attempt, None))
            continue
        except httpx.TransportError as exc:
            raise _failure(exc, f"{method} {path}") from exc
        if response.status_code not in RETRY_STATUSES or last:
            return checked(response)
        time.sleep(retries.delay(attempt, response))
    raise AssertionError("unreachable")


async def send_async(
    http: httpx.AsyncClient, retries: Retries, method: str, path: str, body: Any = None
) -> Any:
    for attempt in range(retries.max_retries + 1):
        last = attempt == retries.max_retries
        try:
            response = await http.request(method, path, json=body)
        except httpx.ConnectError as exc:
            if last:
                raise _failure(exc, f"{method} {path}") from exc
            await asyncio.sleep(retries.delay(attempt, None))
            continue
        except httpx.TransportError as exc:
            raise _failure(exc, f"{method} {path}") from exc
        if response.status_code not in RETRY_STATUSES or last:
            return checked(response)
        await asyncio.sleep(retries.delay(attempt, response))
    raise AssertionError("unreachable")
