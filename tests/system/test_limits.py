"""HTTP-level limits (app/http/server.py) against a real server over real sockets, with short timeouts.

Each test checks that the server cuts the hostile client off within its bound, logs one line naming
the setting, and goes on serving everyone else.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.conftest import RunningServer

TIMEOUT = 1.0  # NAMEGEN_HEADER_TIMEOUT / BODY_TIMEOUT / SEND_TIMEOUT in these tests
SLACK = 4.0  # on a busy 2-core machine a timer can fire late; the bound checked is TIMEOUT + SLACK
MAX_CONNECTIONS = 16
# /loss of 1000 words of 64 characters: about 4.4 MB of JSON
BIG_LOSS = json.dumps({"words": ["abcdefghijklmnopqrstuvwxyz" * 2 + "abcdefghijkl"] * 1000}).encode()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory):
    server = RunningServer(
        tmp_path_factory.mktemp("limits") / "server.log",
        NAMEGEN_HEADER_TIMEOUT=str(TIMEOUT),
        NAMEGEN_BODY_TIMEOUT=str(TIMEOUT),
        NAMEGEN_SEND_TIMEOUT=str(TIMEOUT),
        NAMEGEN_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        NAMEGEN_MAX_UNSENT_BYTES=str(2 * 1024 * 1024),
        NAMEGEN_ACCESS_LOG="false",
    )
    try:
        yield server.wait_healthy()
    finally:
        server.stop()


def connect(server: RunningServer, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT + SLACK + 5)
    sock.connect(("127.0.0.1", server.port))
    return sock


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start, chunks = time.monotonic(), []
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks), time.monotonic() - start


def send_all_until_refused(sock: socket.socket, data: bytes) -> None:
    try:
        for i in range(0, len(data), 65536):
            sock.sendall(data[i : i + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed as soon as it had seen enough


def still_serving(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert httpx.post(f"{server.url}/sample", json={"n": 2, "seed": 1}, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * 1024 * 1024) + b"\r\n\r\n",
        b"GET /health?" + b"q" * (1024 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Many: b\r\n" * 20_000 + b"\r\n",
    ],
    ids=["4 MB header", "1 MB URL", "20,000 headers"],
)
def test_an_oversized_request_head_gets_431_quickly_and_the_server_keeps_serving(limited, head):
    start = time.monotonic()
    with connect(limited) as sock:
        send_all_until_refused(sock, head)
        answer, _ = read_until_closed(sock, 10)
    took = time.monotonic() - start
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert took < 5, f"{took:.1f} s to refuse a {len(head):,}-byte head"
    assert limited.mentions("NAMEGEN_MAX_HEADER_BYTES")
    still_serving(limited)


def test_a_normal_sized_head_and_a_large_body_are_served(limited):
    headers = {f"x-h{i}": "v" * 100 for i in range(100)}  # about 11 KB: under the 16 KiB default
    assert httpx.get(f"{limited.url}/health", headers=headers).status_code == 200
    with connect(limited) as sock:  # head and a 66 KB body in one write: only the head counts
        sock.sendall(_big_loss_request())
        sock.settimeout(30)
        assert sock.recv(64).startswith(b"HTTP/1.1 200 ")


def test_slowloris_headers_are_cut_off_within_the_header_timeout(limited):
    with connect(limited) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        answer = b""
        for _ in range(int((TIMEOUT + SLACK) / 0.2)):  # one header byte every 0.2 s, never done
            try:
                sock.sendall(b"X")
                sock.settimeout(0.2)
                answer = sock.recv(65536)  # an answer, or b"": closed
                break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer
    assert TIMEOUT * 0.8 < took < TIMEOUT + SLACK, f"cut off after {took:.1f} s"
    assert limited.mentions("NAMEGEN_HEADER_TIMEOUT")
    still_serving(limited)


def test_a_connection_that_sends_nothing_is_closed_within_the_header_timeout(limited):
    with connect(limited) as sock:
        answer, took = read_until_closed(sock, TIMEOUT + SLACK + 5)
    assert answer == b"" and took < TIMEOUT + SLACK, f"{answer!r} after {took:.1f} s"


def test_a_half_sent_body_gets_408_within_the_body_timeout(limited):
    with connect(limited) as sock:
        sock.sendall(
            b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"word": "em'
        )
        answer, took = read_until_closed(sock, TIMEOUT + SLACK + 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert took < TIMEOUT + SLACK, f"closed after {took:.1f} s"
    assert limited.mentions("NAMEGEN_BODY_TIMEOUT")
    still_serving(limited)


def test_keep_alive_requests_are_not_cut_off_by_the_header_timer(limited):
    with httpx.Client(base_url=limited.url, timeout=10) as client:
        for _ in range(3):  # each request within the timeout of the last, the whole beyond it
            assert client.post("/sample", json={"n": 1}).status_code == 200
            time.sleep(TIMEOUT * 0.6)


def _big_loss_request() -> bytes:
    return (
        b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BIG_LOSS), BIG_LOSS)
    )


def test_a_client_that_never_reads_its_answer_is_dropped_after_the_send_timeout(limited):
    with connect(limited, rcvbuf=4096) as sock:
        sock.sendall(_big_loss_request())
        assert limited.mentions("NAMEGEN_SEND_TIMEOUT", timeout=TIMEOUT + SLACK + 10)
        answer, _ = read_until_closed(sock, 10)  # what was in flight, then the end
    assert answer.startswith(b"HTTP/1.1 200 ")
    length = int(answer.split(b"content-length: ")[1].split(b"\r\n")[0])
    assert len(answer) < length, "the answer was cut short"
    still_serving(limited)


def test_stalled_answers_together_hold_at_most_max_unsent_bytes(limited):
    # each holds about 1.6 MB beyond what the kernel buffers: more than 2 MiB together
    socks = [connect(limited, rcvbuf=4096) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(_big_loss_request())
        assert limited.mentions("NAMEGEN_MAX_UNSENT_BYTES", timeout=20)
    finally:
        for sock in socks:
            sock.close()
    still_serving(limited)


def test_connections_past_the_limit_get_503_and_are_closed(limited):
    socks = [connect(limited) for _ in range(MAX_CONNECTIONS + 4)]
    try:
        refused = 0
        for sock in socks[MAX_CONNECTIONS:]:
            answer, _ = read_until_closed(sock, TIMEOUT + SLACK)
            refused += answer.startswith(b"HTTP/1.1 503 ")
        assert refused == 4
    finally:
        for sock in socks:
            sock.close()
    assert limited.mentions("NAMEGEN_MAX_CONNECTIONS")
    time.sleep(0.5)
    still_serving(limited)


def test_limits_are_documented_settings():
    from app.settings import Settings

    for name in ("max_header_bytes", "header_timeout", "body_timeout", "send_timeout", "max_unsent_bytes"):
        assert Settings.model_fields[name].description


def test_the_uvicorn_internals_the_server_relies_on_are_there():
    """app/http/server.py's docstring lists what it takes from uvicorn's internals; a uvicorn that
    moved any of it must fail here, not in production."""
    import asyncio

    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
    from uvicorn.server import ServerState

    hooks = ["connection_made", "connection_lost", "data_received", "on_message_begin", "on_url",
             "on_header", "on_headers_complete", "on_body", "on_message_complete", "pause_writing",
             "resume_writing", "shutdown"]  # fmt: skip
    private = ["_unset_keepalive_if_required", "_start_asgi_task", "_should_upgrade",
               "_unsupported_upgrade_warning", "handle_websocket_upgrade", "send_400_response"]  # fmt: skip
    for name in [*hooks, *private]:
        assert callable(getattr(HttpToolsProtocol, name, None)), f"HttpToolsProtocol.{name} moved"
    for name in ("handle_exit", "on_tick", "startup"):
        assert callable(getattr(uvicorn.Server, name, None)), f"uvicorn.Server.{name} moved"

    async def instances() -> None:
        config = uvicorn.Config(app=lambda scope, receive, send: None, loop="none")
        config.load()
        protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        for name in ("connections", "cycle", "transport", "loop", "pipeline", "parser", "logger"):
            assert hasattr(protocol, name), f"HttpToolsProtocol().{name} moved"
        server = uvicorn.Server(config)
        assert isinstance(server._captured_signals, list) and server.should_exit is False

    asyncio.run(instances())
    cycle_fields = RequestResponseCycle.__init__.__code__.co_names
    cycle_fields = {*cycle_fields, *RequestResponseCycle.__init__.__code__.co_varnames}
    needed = {"keep_alive", "response_complete", "response_started", "disconnected", "message_event", "scope"}
    assert needed <= cycle_fields, "RequestResponseCycle fields moved"
