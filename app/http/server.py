"""The HTTP server: uvicorn with uvloop and httptools, plus the limits httptools lacks.

httptools parses whatever it is fed: a request line or header of any size, as slowly as the client
likes, and uvicorn writes any response into an unbounded buffer for a client that never reads it.
`LimitedHttpToolsProtocol` bounds each of these per connection:

- the request head (request line + headers) to `max_header_bytes`: 431 and close past it, counted
  as bytes arrive, so an oversized head costs at most one read (<= 256 KiB) of parsing;
- what follows the head: trailer fields of a chunked body count against `max_header_bytes` too
  (431; they are dropped, never added to a running request's headers), and every byte read after
  the head (body data, chunk-size lines with their extensions, trailers) against `max_body_bytes`
  + `max_header_bytes` (413): a request costs at most its limits plus one read, whatever its shape;
- time: the head must be complete within `header_timeout` of its first byte (or of the connection
  opening), the body within `body_timeout` of the head: 408 and close otherwise (slowloris,
  half-sent bodies, connections that never send anything);
- sending: a response the client has not read from for `send_timeout` seconds is dropped with its
  connection, and all responses stalled this way hold at most `max_unsent_bytes` unsent bytes
  together (the longest stalled is dropped first; uvloop keeps each whole response object while
  any of it is unsent, so the memory held is a few times that);
- connections: past `max_connections` a new one gets 503 and is closed at once (the one refusal:
  uvicorn's own `limit_concurrency` is not used, so a connection already open keeps being served).
- probes: with `probe_port` set, a second listener there serves GET /health only (anything else 404),
  with its own cap of `max_probe_connections`: a crowd holding every connection of the main port
  does not fail the liveness and readiness probes.

A request with `Upgrade` that is not a WebSocket handshake (curl --http2's `Upgrade: h2c`) is served
as plain HTTP/1.1 with its body: httptools stops at such a head and hands back the rest as another
protocol's bytes, so the body is replayed through a fresh parser (`_replay_body`).

Every request's scope carries a `threading.Event` under `CLIENT_GONE`, set when its connection is
lost or cut off before its answer is complete: model work checks it so a hung-up client's work
does not start, or stops (app.serving.workers).

Each limit hit logs one warning line naming the setting (at most a few a second per limit).
The cost on a request is a few attribute checks and one timer for a request with a body.

`Server` reports not ready on SIGTERM: /health answers 503 for `drain_delay` seconds while
everything else is still served, then uvicorn stops accepting, finishes what it accepted (for at
most `shutdown_timeout` seconds) and exits.

This leans on uvicorn's internals, so pyproject pins uvicorn to the minor release it was written
against (0.54). What it relies on, checked by tests/system/test_limits.py's
`test_the_uvicorn_internals_the_server_relies_on_are_there` (which fails loudly if one moves):
- `uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`, subclassed: its hooks
  `connection_made`, `connection_lost`, `data_received`, `on_message_begin`, `on_url`,
  `on_header`, `on_headers_complete`, `on_body`, `on_message_complete`, `pause_writing`,
  `resume_writing`, `shutdown`; its attributes `connections`, `cycle` (`keep_alive`,
  `response_complete`, `response_started`, `disconnected`, `message_event`, `scope`), `pipeline`,
  `parser`, `headers`, `url`, `scope`, `transport`, `loop`, `logger`; and the private
  `_unset_keepalive_if_required`, `_start_asgi_task`, `_should_upgrade`,
  `_unsupported_upgrade_warning`, `handle_websocket_upgrade`, `send_400_response` (the parser
  feeding `_feed` repeats from uvicorn's `data_received`);
- `uvicorn.Server`, subclassed: `handle_exit`, `on_tick`, `startup`, `should_exit`, `servers`,
  `server_state`, `lifespan`, `started` and the private `_captured_signals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import FrameType
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

log = logging.getLogger("uvicorn.error")

CLIENT_GONE = "namegen.client_gone"  # scope key: a threading.Event set once the client has gone


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
    max_body_bytes: int
    probe_port: int | None
    max_probe_connections: int

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
_413 = _plain(b"413 Content Too Large", b"request body, chunk framing and trailers too large")
_503 = _plain(b"503 Service Unavailable", b"too many connections").replace(
    b"connection: close", b"retry-after: 1\r\nconnection: close"
)
_404 = _plain(b"404 Not Found", b"the probe port serves GET /health only")
PROBE_PATHS = (b"/health",)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[Limits]  # set by `protocol_class`
    # Connections whose writes are paused (the client is not reading), oldest stall first: shared
    # by every connection of the process, for the `max_unsent_bytes` budget.
    stalled: ClassVar[dict[LimitedHttpToolsProtocol, float]] = {}
    # Connections open on the probe port (a subset of uvicorn's `connections`).
    probes: ClassVar[set[LimitedHttpToolsProtocol]] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # between requests or inside a request line / headers
        self._head_bytes = 0
        self._after_head_bytes = 0  # read since the head ended: body, chunk framing, trailers
        self._trailer_bytes = 0
        self._upgrade_framing: bytes | None = None  # a non-WebSocket Upgrade request's body framing
        self._muted = False  # parser callbacks ignored: a replayed body's made-up head, or a refusal
        self._probe = False
        self._running: Any = None  # the RequestResponseCycle whose app task runs (pipelining: not self.cycle)
        self._read_timer: TimerHandle | None = None  # header or body timeout, one at a time
        self._read_seconds = 0.0
        self._send_timer: TimerHandle | None = None
        self._unsent_at_arm = 0
        self._drain_on_shutdown = False

    # -- connections ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._probe = (
            self.limits.probe_port is not None
            and bool(self.server)
            and (
                self.server[1] == self.limits.probe_port  # type: ignore[index]
            )
        )
        if self._probe:
            self.probes.add(self)
            open_, most, setting = len(self.probes), self.limits.max_probe_connections, "probe connections"
        else:
            open_, most = len(self.connections) - len(self.probes), self.limits.max_connections
            setting = "NAMEGEN_MAX_CONNECTIONS"
        if open_ > most:
            limit_hit(
                setting,
                "%s: refused, %d connections open (%s=%d); 503 and closed",
                self._who(),
                open_ - 1,
                setting,
                most,
            )
            transport.write(_503)
            transport.close()
            return
        # a connection that never sends a complete head is closed like a slow one
        self._arm_read(self.limits.header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read()
        self._cancel_send()
        self.probes.discard(self)
        running = self._running
        if running is not None and running is not self.cycle and not running.response_complete:
            # uvicorn marks only the last parsed request gone; the one whose task runs would write
            # to the closed transport (a RuntimeError traceback per connection)
            running.disconnected = True
            running.message_event.set()
        unanswered = len(self.pipeline) + (running is not None and not running.response_complete)
        if self.pipeline:
            limit_hit(
                "pipelined",
                "%s: connection lost with %d pipelined requests unanswered; dropped",
                self._who(),
                unanswered,
            )
        self._client_gone()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def _client_gone(self, cut_off: bool = False) -> None:
        """Tell the current request's work (and any pipelined behind it) that its client has gone
        (or, `cut_off`, that the server cut it off: its answer will not be sent)."""
        cycles = [c for c in (self.cycle, self._running) if c is not None]
        for cycle in [*cycles, *(cycle for cycle, _ in self.pipeline)]:
            if (cut_off or not cycle.response_complete) and CLIENT_GONE in cycle.scope:
                cycle.scope[CLIENT_GONE].set()  # type: ignore[typeddict-item]

    # -- request head and body --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            if self._read_timer is None:  # the first bytes of a request after an idle keep-alive
                self._arm_read(self.limits.header_timeout, self._header_timed_out)
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._feed(data)  # the head may end within this read (count reset)
                if self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
                    self._head_too_large()
                return
        else:
            self._after_head_bytes += len(data)
        self._feed(data)
        if self._reading_head or self.transport.is_closing():
            return
        if self._after_head_bytes > self.limits.max_body_bytes + self.limits.max_header_bytes:
            limit_hit(
                "body_bytes",
                "%s: over %d bytes after the request head (body, chunk framing and extensions, trailers; "
                "NAMEGEN_MAX_BODY_BYTES + NAMEGEN_MAX_HEADER_BYTES); 413 and closed",
                self._who(),
                self.limits.max_body_bytes + self.limits.max_header_bytes,
            )
            self._abort_request(_413)
        elif self._read_timer is None:
            self._arm_read(self.limits.body_timeout, self._body_timed_out)

    def _feed(self, data: bytes) -> None:
        """uvicorn's data_received, but a non-WebSocket upgrade is ignored: its body is read."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as exc:
            if self._upgrade_framing is None:  # a WebSocket handshake, as uvicorn does it
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            self._replay_body(data[exc.args[0] :])

    def _replay_body(self, rest: bytes) -> None:
        """httptools stopped after an Upgrade head, treating what follows as another protocol: parse
        it as this request's body (and any requests after it) with a fresh parser, primed with a
        made-up head carrying only the original framing, whose callbacks are ignored."""
        framing, self._upgrade_framing = self._upgrade_framing, None
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # as uvicorn sets its parser up
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._muted = True
        try:
            self.parser.feed_data(b"POST / HTTP/1.1\r\n" + framing + b"\r\n")
        finally:
            self._muted = False
        if rest:
            self._feed(rest)

    # -- parser callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if not self._muted:
            super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if not self._muted:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._muted:
            return
        if self._reading_head:
            super().on_header(name, value)
            return
        # a trailer field of a chunked body: counted against the head's limit, never kept
        self._trailer_bytes += len(name) + len(value) + 4
        if self._trailer_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            limit_hit(
                "header_bytes",
                "%s: chunked trailers over %d bytes (NAMEGEN_MAX_HEADER_BYTES); 431 and closed",
                self._who(),
                self.limits.max_header_bytes,
            )
            self._abort_request(_431)

    def on_headers_complete(self) -> None:
        if self._muted:
            return
        self._reading_head = False
        self._head_bytes = self._after_head_bytes = self._trailer_bytes = 0
        self._cancel_read()
        if self._probe and not self._is_probe_request():
            self._refuse(_404)
            return
        if self.parser.should_upgrade() and not self._should_upgrade():
            self._upgrade_framing = self._body_framing()
        self.scope[CLIENT_GONE] = threading.Event()  # type: ignore[typeddict-unknown-key]
        super().on_headers_complete()
        if self._drain_on_shutdown and self.cycle is not None:
            self.cycle.keep_alive = False

    def _body_framing(self) -> bytes:
        """The head's body framing (Transfer-Encoding or Content-Length), to replay its body."""
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return b"transfer-encoding: " + value + b"\r\n"
        for name, value in self.headers:
            if name == b"content-length":
                return b"content-length: " + value + b"\r\n"
        return b"content-length: 0\r\n"

    def _is_probe_request(self) -> bool:
        try:
            path = httptools.parse_url(self.url).path
        except httptools.HttpParserInvalidURLError:
            return False
        return path in PROBE_PATHS and self.parser.get_method() in (b"GET", b"HEAD")

    def on_body(self, body: bytes) -> None:
        if not self._muted:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._muted or self._upgrade_framing is not None:
            return  # refused, or httptools skipped the body of an Upgrade request: it is replayed
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
        self._abort_request(_408)

    def _abort_request(self, response: bytes) -> None:
        """Answer `response` unless the app started answering, tell the app its client is gone, close."""
        self._cancel_read()
        self._muted = True  # the rest of what was read is never answered
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self.transport.write(response)
            cycle.response_started = cycle.response_complete = True  # the app's answer, if any, is dropped
        elif cycle is None:
            self.transport.write(response)
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self._client_gone(cut_off=True)
        self.transport.close()

    def _refuse(self, response: bytes) -> None:
        self._cancel_read()
        self._muted = True
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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, plus the probe listener when `Limits.probe_port` is set."""
        await super().startup(sockets)
        limits: Limits = self.config.http_protocol_class.limits  # type: ignore[attr-defined]
        if not self.started or limits.probe_port is None:
            return
        loop = asyncio.get_running_loop()

        def create_protocol() -> asyncio.Protocol:
            return self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
            )

        self.servers.append(
            await loop.create_server(create_protocol, host=self.config.host, port=limits.probe_port)
        )
        log.info("Probes: GET /health on http://%s:%d", self.config.host, limits.probe_port)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and not self.should_exit and time.monotonic() >= self.drain_until:
            self.should_exit = True
        return await super().on_tick(counter)
