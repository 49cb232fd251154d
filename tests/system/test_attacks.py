"""Issue 21's attacks over real sockets against `python -m app` with one worker, as deploy/k8s runs it.

Each test sends what an attacker sent and checks the bound that now holds: what the server answers,
what it logged, and that it still serves everyone else (server memory read from /proc).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.attacks import send_ignoring_close
from tests.conftest import RunningServer, free_port

MAX_CONNECTIONS = 16
MAX_HEADER_BYTES = 16 * 1024  # the default
CHUNKED_HEAD = (
    b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
WORD_BODY = b'{"word": "emma"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    probe_port = free_port()
    running = RunningServer(
        tmp_path_factory.mktemp("attacks") / "server.log",
        NAMEGEN_WORKERS="1",
        NAMEGEN_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        NAMEGEN_PROBE_PORT=str(probe_port),
        NAMEGEN_HEADER_TIMEOUT="30",
        NAMEGEN_ACCESS_LOG="true",  # the X-Forwarded-For test reads the client address it logs
    )
    running.probe_port = probe_port  # type: ignore[attr-defined]
    try:
        yield running.wait_healthy()
    finally:
        running.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect(port: int, timeout: float = 30) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_all(sock: socket.socket, limit: float = 30) -> bytes:
    """Everything the server sends until it closes the connection (or `limit` passes)."""
    chunks = []
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def one_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) read off a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def still_serving(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert httpx.post(f"{server.url}/loss", json={"word": "emma"}, timeout=10).status_code == 200


# -- 1. every byte of a request counts against a limit -----------------------------------------------
def test_chunked_trailers_past_the_header_limit_get_431_and_hold_no_memory(server):
    before = rss_mb(server.proc.pid)
    trailers = b"X-T: y\r\n" * (40 * 1024 * 1024 // 8)  # 40 MiB of trailer fields: RSS +600 MB before
    with connect(server.port) as sock:
        all_sent = send_ignoring_close(sock, CHUNKED_HEAD + b"%x\r\n%s\r\n0\r\n" % (16, WORD_BODY) + trailers)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert not all_sent, "the server read all 40 MiB instead of closing"
    assert rss_mb(server.proc.pid) - before < 30
    assert server.mentions("chunked trailers over 16384 bytes (NAMEGEN_MAX_HEADER_BYTES)")
    still_serving(server)


def test_chunked_trailers_within_the_limit_are_accepted(server):
    with connect(server.port) as sock:
        sock.sendall(CHUNKED_HEAD + b"%x\r\n%s\r\n0\r\nX-Checksum: abc\r\n\r\n" % (16, WORD_BODY))
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_chunk_extensions_count_against_the_body_limit(server):
    before = rss_mb(server.proc.pid)
    extension = b";e=" + b"a" * (20 * 1024 * 1024)  # 20 MB: accepted with a 200 before
    with connect(server.port) as sock:
        send_ignoring_close(sock, CHUNKED_HEAD + b"%x%s\r\n%s\r\n0\r\n\r\n" % (16, extension, WORD_BODY))
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert rss_mb(server.proc.pid) - before < 30
    assert server.mentions("NAMEGEN_MAX_BODY_BYTES + NAMEGEN_MAX_HEADER_BYTES")
    still_serving(server)


# -- 6. an Upgrade that is not a WebSocket handshake is ignored, the body read -------------------------
H2C = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_post_with_upgrade_h2c_keeps_its_body(server, chunked):
    expected = httpx.post(f"{server.url}/loss", json={"word": "emma"}).content
    framing = (
        b"Transfer-Encoding: chunked\r\n\r\n5\r\n%s\r\nb\r\n%s\r\n0\r\n\r\n" % (WORD_BODY[:5], WORD_BODY[5:])
        if chunked
        else b"Content-Length: 16\r\n\r\n" + WORD_BODY
    )
    request = b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + H2C + framing
    with connect(server.port) as sock:  # the upgrade request, then a plain one pipelined behind it
        sock.sendall(request + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert rest[: len(expected)] == expected
    assert b"HTTP/1.1 200 " in rest and rest.endswith(b'{"status":"ok"}')


# -- 5. /health under a full connection cap ----------------------------------------------------------
class IdleCrowd:
    """`size` connections that send nothing, each reopened as soon as the server closes it."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.stop = threading.Event()
        self.refused = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        socks: list[socket.socket | None] = [None] * self.size
        while not self.stop.is_set():
            for i, sock in enumerate(socks):
                if sock is not None:
                    try:
                        if sock.recv(1024, socket.MSG_PEEK) == b"":
                            raise ConnectionResetError
                        self.refused += 1  # the 503, then the close
                        sock.close()
                    except BlockingIOError:
                        continue
                    except OSError:
                        sock.close()
                try:
                    socks[i] = connect(self.port, 2)
                    socks[i].setblocking(False)  # type: ignore[union-attr]
                except OSError:
                    socks[i] = None
            time.sleep(0.02)
        for sock in socks:
            if sock is not None:
                sock.close()

    def __enter__(self) -> IdleCrowd:
        self.thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_probes_and_open_keep_alive_connections_are_served_under_an_idle_crowd(server):
    probe_url = f"http://127.0.0.1:{server.probe_port}/health"
    with httpx.Client(base_url=server.url, timeout=5) as kept:  # opened before the crowd
        assert kept.get("/health").status_code == 200
        with IdleCrowd(server.port, MAX_CONNECTIONS * 4) as crowd:
            probes = [httpx.get(probe_url, timeout=5).status_code for _ in range(20)]
            kept_statuses = [kept.get("/health").status_code for _ in range(20)]
            refused = crowd.refused
    assert probes == [200] * 20, probes
    assert kept_statuses == [200] * 20, kept_statuses
    assert refused > 0, "the crowd never filled the cap"
    assert server.mentions("NAMEGEN_MAX_CONNECTIONS=16")


def test_the_probe_port_serves_health_only(server):
    base = f"http://127.0.0.1:{server.probe_port}"
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/models").status_code == 404
    assert httpx.post(f"{base}/health", json={}).status_code == 404


def test_exactly_max_connections_are_served_and_the_next_gets_the_one_503(server):
    socks = [connect(server.port) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        for sock in socks:  # every one of the MAX_CONNECTIONS connections is served (was: the last 503)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert one_response(sock).startswith(b"HTTP/1.1 200 ")
        with connect(server.port) as extra:
            answer = read_all(extra, 5)
        assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b"too many connections"), answer
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.3)
    still_serving(server)


def test_x_forwarded_for_is_not_trusted_by_default(server):
    """The access log and the app see the peer's address, not what a client claims."""
    response = httpx.get(f"{server.url}/models?xff-test", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    assert server.mentions("/models?xff-test")
    line = next(line for line in server.output().splitlines() if "/models?xff-test" in line)
    assert "127.0.0.1" in line and "203.0.113.9" not in line, line


def test_keep_alive_outlasts_common_clients_idle_timeout(server):
    """httpx, Node and others drop an idle connection after 5 s: the server must not close first."""
    with connect(server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert one_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(6)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert one_response(sock).startswith(b"HTTP/1.1 200 ")


def test_a_big_body_still_fits_the_after_head_budget(server):
    """The after-head budget leaves a body at NAMEGEN_MAX_BODY_BYTES its normal answer."""
    words = json.dumps({"words": ["emma"] * 20000}).encode()[: 250 * 1024 - 2]
    body = words[: words.rfind(b",")] + b"]}"
    response = httpx.post(f"{server.url}/loss", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422  # too many words: the app answered, not the byte budget


# -- 4. a 422 costs O(limit), not O(input) -------------------------------------------------------------
def test_a_422_for_a_huge_list_names_the_limit_and_echoes_nothing(server):
    body = b'{"words": [' + b",".join([b"1"] * 120_000) + b"]}"  # 240 KB: under the body limit
    response = httpx.post(f"{server.url}/loss", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "too_long" and error["loc"] == ["body", "words"] and "input" not in error
    assert len(response.content) < 1000


class CountingList(list):
    """A list that counts the items anyone iterates over."""

    visited = 0

    def __iter__(self):
        for item in super().__iter__():
            CountingList.visited += 1
            yield item


def test_rendering_a_422_walks_at_most_the_echo_budget_of_its_input():
    from app.api.errors import MAX_ECHO_CHARS, render_errors

    huge = CountingList([1] * 120_000)
    error = {"type": "too_long", "loc": ("body", "words"), "msg": "too long", "input": huge}
    (entry,) = render_errors([error])
    assert "input" not in entry
    assert CountingList.visited <= MAX_ECHO_CHARS  # was 120,000: the whole list walked, then cut
    short = [1, 2, 3]
    (entry,) = render_errors([{"type": "x", "loc": ("body",), "msg": "m", "input": short}])
    assert entry["input"] == short


# -- 3. work whose client has gone does not start, and stops at its next step --------------------------
def status_count(server: RunningServer, path: str, status: int) -> int:
    text = httpx.get(f"{server.url}/metrics").text
    pattern = f'namegen_http_requests_total{{endpoint="{path}",method="POST",status="{status}"}} '
    line = next((line for line in text.splitlines() if line.startswith(pattern)), None)
    return 0 if line is None else int(float(line.split()[-1]))


def test_abandoned_heavy_requests_are_dropped_not_worked_through(server):
    long_word = ("abcdefghijklmnopqrstuvwxyz" * 3)[:64]
    heavy = json.dumps({"model": "names-transformer", "words": [long_word] * 80}).encode()  # ~1 s each
    before = status_count(server, "/loss", 499)
    socks = []
    for _ in range(8):  # one worker: one runs, seven wait
        sock = connect(server.port)
        sock.sendall(
            b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(heavy), heavy)
        )
        socks.append(sock)
    time.sleep(0.3)
    for sock in socks:
        sock.close()
    small = {"model": "names-transformer", "n": 5, "seed": 1}
    assert httpx.post(f"{server.url}/sample", json=small, timeout=60).status_code == 200
    deadline = time.monotonic() + 30
    while status_count(server, "/loss", 499) - before < 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    # every one of the eight ended as "client closed" (499): none was worked through to a 200
    assert status_count(server, "/loss", 499) - before == 8


# -- degradations --------------------------------------------------------------------------------------
def test_connections_dying_with_pipelined_requests_log_a_few_warning_lines_not_tracebacks(server):
    body = json.dumps({"n": 100, "seed": 1}).encode()
    request = b"POST /sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    before = server.output()
    for _ in range(100):
        sock = connect(server.port)
        sock.sendall(request * 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset with 20 requests in flight
    time.sleep(2)
    still_serving(server)
    logged = server.output()[len(before) :]
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged
    warnings = [line for line in logged.splitlines() if "pipelined requests unanswered" in line]
    assert 1 <= len(warnings) <= 20, warnings[:3]


def test_made_up_methods_share_one_metrics_label(server):
    from bench.attacks import LLHTTP_METHODS, request

    for method in LLHTTP_METHODS:
        for path in ("/health", "/sample", "/nope", "/static/x"):
            request(server.port, method, path, timeout=10)
    text = httpx.get(f"{server.url}/metrics").text
    labels = set(re.findall(r'namegen_http_requests_total\{[^}]*method="([^"]+)"', text))
    assert labels <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, labels
    assert "other" in labels  # PROPFIND and the rest were counted, under one label
    # before, each of the 35 methods got its own series and histogram per path: +270 KB for good
