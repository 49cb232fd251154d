"""The HTTP server: uvicorn with uvloop and httptools, plus the limits httptools lacks.

httptools parses whatever it is fed: a request line or header of any size, as slowly as the client
likes, and uvicorn writes any response into an unbounded buffer for a client that never reads it.
`LimitedHttpToolsProtocol` bounds each of these per connection:

- the request head (request line + headers) to `max_header_bytes`: 431 and close past it, counted
  as bytes arrive, so an oversized head costs at most one read (<= 256 KiB) of parsing;
- time: the head must be complete within `header_timeout` of its first byte (or of the connection
  opening), the body within `body_timeout` of the head: 408 and close otherwise (slowloris,
  half-sent bodies, connections that never send anything);
- sending: a response the client has not read from for `send_timeout` seconds is dropped with its
  connection, and all responses stalled this way hold at most `max_unsent_bytes` unsent bytes
  together (the longest stalled is dropped first; uvloop keeps each whole response object while
  any of it is unsent, so the memory held is a few times that);
- connections: past `max_connections` a new one gets 503 and is closed at once.

Each limit hit logs one warning line naming the setting (at most a few a second per limit).
The cost on a request is a few attribute checks and one timer for a request with a body.

`Server` reports not ready on SIGTERM: /health answers 503 for `drain_delay` seconds while
everything else is still served, then uvicorn stops accepting, finishes what it accepted (for at
most `shutdown_timeout` seconds) and exits.

This leans on uvicorn's internals, so pyproject pins uvicorn to the minor release it was written
against (0.54). What it relies on, checked by tests/system/test_limits.py's
`test_the_uvicorn_internals_the_server_relies_on_are_there` (which fails loudly if one moves):
- `uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`, subclassed: its hooks
  `connection_made`, `connection_lost`, `data_received`, `on_headers_complete`,
  `on_message_complete`, `pause_writing`, `resume_writing`, `shutdown`; its attributes
  `connections`, `cycle` (`keep_alive`, `response_complete`), `transport`, `loop`; and the private
  `_unset_keepalive_if_required`;
- `uvicorn.Server`, subclassed: `handle_exit`, `on_tick`, `should_exit` and the private
  `_captured_signals`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import FrameType
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class Limits:
    """The limits this layer enforces. Each field is named after its NAMEGEN_ setting, which holds
    the default and the bounds: `Limits.of(settings)`."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    send_timeout: float
    max_unsent_bytes: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits `settings` set."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


class _RateLimitedLog:
    """One warning line per limit hit, at most `per_second` lines a second per limit; the lines
    held back are counted in the next one."""

    def __init__(self, per_second: int = 5) -> None:
        self.per_second = per_second
        self.windows: dict[str, tuple[int, int, int]] = {}  # limit -> (second, logged, held back)

    def __call__(self, limit: str, message: str, *args: object) -> None:
        now = int(time.monotonic())
        second, logged, held = self.windows.get(limit, (now, 0, 0))
        if second != now:
            second, logged = now, 0
        if logged >= self.per_second:
            self.windows[limit] = (second, logged, held + 1)
            return
        if held:
            message += f" ({held} more like it not logged)"
        self.windows[limit] = (second, logged + 1, 0)
        log.warning(message, *args)


limit_hit = _RateLimitedLog()


def _plain(status: bytes, text: bytes = b"") -> bytes:
    """A complete response that closes the connection, written straight to the transport."""
    headers = b"content-type: text/plain; charset=utf-8\r\n" if text else b""
    return b"HTTP/1.1 %s\r\n%scontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        headers,
        len(text),
        text,
    )


_408 = _plain(b"408 Request Timeout", b"request not complete in time")
_431 = _plain(b"431 Request Header Fields Too Large", b"request line or headers too large")
_503 = _plain(b"503 Service Unavailable", b"too many connections").replace(
    b"connection: close", b"retry-after: 1\r\nconnection: close"
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[Limits]  # set by `protocol_class`
    # Connections whose writes are paused (the client is not reading), oldest stall first: shared
    # by every connection of the process, for the `max_unsent_bytes` budget.
    stalled: ClassVar[dict[LimitedHttpToolsProtocol, float]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # between requests or inside a request line / headers
        self._head_bytes = 0
        self._read_timer: TimerHandle | None = None  # header or body timeout, one at a time
        self._read_seconds = 0.0
        self._send_timer: TimerHandle | None = None
        self._unsent_at_arm = 0
        self._drain_on_shutdown = False

    # -- connections ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            limit_hit(
                "connections",
                "%s: refused, %d connections open (NAMEGEN_MAX_CONNECTIONS=%d); 503 and closed",
                self._who(),
                len(self.connections) - 1,
                self.limits.max_connections,
            )
            transport.write(_503)
            transport.close()
            return
        # a connection that never sends a complete head is closed like a slow one
        self._arm_read(self.limits.header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read()
        self._cancel_send()
        super().connection_lost(exc)

    # -- request head and body --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            if self._read_timer is None:  # the first bytes of a request after an idle keep-alive
                self._arm_read(self.limits.header_timeout, self._header_timed_out)
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                super().data_received(data)  # the head may end within this read (count reset)
                if self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
                    self._head_too_large()
                return
        super().data_received(data)
        if not self._reading_head and self._read_timer is None and not self.transport.is_closing():
            self._arm_read(self.limits.body_timeout, self._body_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._cancel_read()
        super().on_headers_complete()
        if self._drain_on_shutdown and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0
        self._cancel_read()

    def _head_too_large(self) -> None:
        limit_hit(
            "header_bytes",
            "%s: request line and headers over %d bytes (NAMEGEN_MAX_HEADER_BYTES); 431 and closed",
            self._who(),
            self.limits.max_header_bytes,
        )
        self._refuse(_431)

    def _header_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being made: the next head is timed after it
        if self._head_bytes:
            limit_hit(
                "header_timeout",
                "%s: request headers not complete within %g s (NAMEGEN_HEADER_TIMEOUT); 408 and closed",
                self._who(),
                self.limits.header_timeout,
            )
            self._refuse(_408)
        elif self._drain_on_shutdown:  # shutting down: idle, closed without a word
            self.transport.close()
        else:  # connected and sent nothing: no request to answer
            limit_hit(
                "header_timeout",
                "%s: no request within %g s of connecting (NAMEGEN_HEADER_TIMEOUT); closed",
                self._who(),
                self.limits.header_timeout,
            )
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        limit_hit(
            "body_timeout",
            "%s: request body not complete within %g s (NAMEGEN_BODY_TIMEOUT%s); 408 and closed",
            self._who(),
            self._read_seconds,
            ", shortened by the shutdown" if self._drain_on_shutdown else "",
        )
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self.transport.write(_408)
            cycle.response_started = cycle.response_complete = True  # the app's answer, if any, is dropped
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _refuse(self, response: bytes) -> None:
        self._cancel_read()
        self.transport.write(response)
        self.transport.close()  # stops reading: bytes still on the way are never parsed

    def _arm_read(self, seconds: float, callback: Callable[[], None]) -> None:
        self._cancel_read()
        self._read_seconds = seconds
        self._read_timer = self.loop.call_later(seconds, callback)

    def _cancel_read(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    # -- sending ----------------------------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        self.stalled[self] = time.monotonic()
        self._unsent_at_arm = self.transport.get_write_buffer_size()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._send_check)
        self._enforce_unsent_budget()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send()

    def _send_check(self) -> None:
        """No progress for `send_timeout` seconds: drop the connection; some progress: wait again."""
        self._send_timer = None
        if self.transport.is_closing():
            return
        unsent = self.transport.get_write_buffer_size()
        if unsent < self._unsent_at_arm:
            self._unsent_at_arm = unsent
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._send_check)
            return
        limit_hit(
            "send_timeout",
            "%s: client read nothing of %d unsent bytes for %g s (NAMEGEN_SEND_TIMEOUT); dropped",
            self._who(),
            unsent,
            self.limits.send_timeout,
        )
        self._drop()

    @classmethod
    def _enforce_unsent_budget(cls) -> None:
        sizes = {p: p.transport.get_write_buffer_size() for p in cls.stalled}
        total = sum(sizes.values())
        for stalled in list(cls.stalled):  # oldest stall first
            if total <= cls.limits.max_unsent_bytes:
                break
            limit_hit(
                "unsent_bytes",
                "%s: dropped with %d unsent bytes: stalled clients held %d (NAMEGEN_MAX_UNSENT_BYTES=%d)",
                stalled._who(),
                sizes[stalled],
                total,
                cls.limits.max_unsent_bytes,
            )
            total -= sizes[stalled]
            stalled._drop()

    def _drop(self) -> None:
        self._cancel_send()
        self.transport.abort()  # frees the unsent bytes now; close() would wait to send them

    def _cancel_send(self) -> None:
        self.stalled.pop(self, None)
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- shutdown ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Uvicorn stops accepting. Whatever is in flight is answered, then the connection closes.
        An idle connection is given a second for a request that may be on its way (closing at once
        would reset it: a lost request for the client), then closed; a half-sent body gets its 408
        before the graceful-shutdown timeout would abandon it."""
        self._drain_on_shutdown = True
        if self._reading_head and (self.cycle is None or self.cycle.response_complete):
            if not self._head_bytes:
                self._unset_keepalive_if_required()
                self._arm_read(min(1.0, self.limits.header_timeout), self._header_timed_out)
            return
        if not self._reading_head and self._read_timer is not None:  # a body is on its way
            grace = self.config.timeout_graceful_shutdown or self.limits.body_timeout
            self._arm_read(min(self.limits.body_timeout, 0.8 * grace), self._body_timed_out)
        super().shutdown()

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"


def protocol_class(limits: Limits) -> type[LimitedHttpToolsProtocol]:
    """LimitedHttpToolsProtocol with these limits (uvicorn builds one protocol per connection)."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class Server(uvicorn.Server):
    """uvicorn's Server, reporting not ready at the first SIGTERM/SIGINT (`on_drain`), still serving
    for `drain_delay` seconds, then shutting down as uvicorn does. A second signal stops at once."""

    def __init__(
        self, config: uvicorn.Config, on_drain: Callable[[], None], drain_delay: float = 0.0
    ) -> None:
        super().__init__(config)
        self.on_drain = on_drain
        self.drain_delay = drain_delay
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_until is None:
            self.on_drain()
            self.drain_until = time.monotonic() + self.drain_delay
            if self.drain_delay > 0:
                log.info("Draining: /health answers 503; shutting down in %g s", self.drain_delay)
                self._captured_signals.append(sig)
                return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and not self.should_exit and time.monotonic() >= self.drain_until:
            self.should_exit = True
        return await super().on_tick(counter)
