"""The attacks of issue 21 against a running server, each printing one JSON line of figures.

Start a server as deploy/k8s does (one worker), then run any attack against it:

    NAMEGEN_WORKERS=1 NAMEGEN_ACCESS_LOG=false .venv/bin/python -m app --port 8765 &
    .venv/bin/python -m bench.attacks --port 8765 --pid $! trailers

`--pid` lets an attack report the server's RSS: the current one and its peak (VmHWM, reset before
the attack through /proc/PID/clear_refs). Attacks: trailers, extensions, loss-transformer,
sample-transformer, abandon, echo-422, idle-crowd, h2c, methods.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"
LONG_WORD = ("abcdefghijklmnopqrstuvwxyz" * 3)[:64]
CHUNKED_HEAD = (
    b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
JSON_HEAD = b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
H2C = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"


def rss(pid: int | None) -> dict[str, float]:
    """The server's RSS and peak RSS in MB (empty without a pid)."""
    if pid is None:
        return {}
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {
        key: int(fields[name].split()[0]) / 1024 for key, name in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))
    }


def reset_peak(pid: int | None) -> None:
    if pid is not None:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def connect(port: int, timeout: float = 120) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    return sock


def read_response(sock: socket.socket, head_only: bool = False) -> tuple[int, bytes]:
    """(status, body) of one response with a Content-Length (`head_only`: to a HEAD request, no
    body); (0, b"") when the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return 0, data
        if not chunk:
            return 0, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length and not head_only:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def request(port: int, method: str, path: str, body: bytes = b"", headers: bytes = b"", timeout: float = 300):
    """(status, body, seconds) of one request on a new connection."""
    start = time.monotonic()
    with connect(port, timeout) as sock:
        sock.sendall(
            b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (method.encode(), path.encode(), len(body), headers, body)
        )
        status, answer = read_response(sock, head_only=method == "HEAD")
    return status, answer, time.monotonic() - start


def send_ignoring_close(sock: socket.socket, data: bytes) -> bool:
    """Send `data` in 64 KiB pieces; False when the server closed first."""
    try:
        for i in range(0, len(data), 65536):
            sock.sendall(data[i : i + 65536])
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def trailers(port: int, pid: int | None, mib: float = 40) -> dict:
    """A valid chunked /loss body, then `mib` MiB of trailer fields."""
    reset_peak(pid)
    before = rss(pid)
    body = b'{"word": "emma"}'
    head = CHUNKED_HEAD
    chunk = b"%x\r\n%s\r\n0\r\n" % (len(body), body)
    field = b"X-T: y\r\n"
    start = time.monotonic()
    with connect(port) as sock:
        sent = send_ignoring_close(sock, head + chunk + field * int(mib * 1024 * 1024 / len(field)) + b"\r\n")
        status, _ = read_response(sock)
    return {"attack": f"{mib:g} MiB of chunked trailers", "status": status, "all_sent": sent,
            "seconds": round(time.monotonic() - start, 2), "before": before, "after": rss(pid)}  # fmt: skip


def extensions(port: int, pid: int | None, mib: float = 20) -> dict:
    """A chunked /loss body whose one chunk carries a `mib` MiB extension."""
    reset_peak(pid)
    body = b'{"word": "emma"}'
    head = CHUNKED_HEAD
    ext = b";e=" + b"a" * int(mib * 1024 * 1024)
    start = time.monotonic()
    with connect(port) as sock:
        sent = send_ignoring_close(sock, head + b"%x%s\r\n%s\r\n0\r\n\r\n" % (len(body), ext, body))
        status, _ = read_response(sock)
    return {"attack": f"{mib:g} MB chunk extension", "status": status, "all_sent": sent,
            "seconds": round(time.monotonic() - start, 2), "after": rss(pid)}  # fmt: skip


def loss_transformer(port: int, pid: int | None, words: int = 1000) -> dict:
    reset_peak(pid)
    body = json.dumps({"model": "names-transformer", "words": [LONG_WORD] * words}).encode()
    status, answer, took = request(port, "POST", "/loss", body)
    return {"attack": f"/loss {words} words of 64 letters, names-transformer", "status": status,
            "seconds": round(took, 2), "answer": answer[:160].decode(errors="replace"),
            "after": rss(pid)}  # fmt: skip


def sample_transformer(port: int, pid: int | None, n: int = 1000) -> dict:
    reset_peak(pid)
    body = json.dumps({"model": "names-transformer", "n": n, "novel": True, "top_k": 1, "seed": 1}).encode()
    status, answer, took = request(port, "POST", "/sample", body)
    return {"attack": f"/sample n={n} novel top_k=1, names-transformer", "status": status,
            "seconds": round(took, 2), "answer": answer[:160].decode(errors="replace"),
            "after": rss(pid)}  # fmt: skip


def abandon(port: int, pid: int | None, clients: int = 8, hang_up: float = 0.5, words: int = 80) -> dict:
    """`clients` heavy transformer /loss requests (`words` words of 64 letters: 80 fit the cost
    bound) hung up after `hang_up` s; then one small worker-bound request, timed."""
    heavy = json.dumps({"model": "names-transformer", "words": [LONG_WORD] * words}).encode()
    socks = []
    for _ in range(clients):
        sock = connect(port)
        sock.sendall(JSON_HEAD % len(heavy) + heavy)
        socks.append(sock)
    time.sleep(hang_up)
    for sock in socks:
        sock.close()
    small = json.dumps({"model": "names-transformer", "n": 5, "seed": 1}).encode()
    status, _, took = request(port, "POST", "/sample", small)
    what = f"{clients} /loss of {words} words hung up after {hang_up} s, then /sample n=5 (transformer)"
    return {"attack": what,
            "status": status, "next_request_seconds": round(took, 3)}  # fmt: skip


def health_times(port: int, stop: threading.Event, every: float = 0.05) -> list[float]:
    """/health latencies on new connections until `stop` (a timeout counts as 30 s)."""
    times: list[float] = []
    while not stop.is_set():
        try:
            status, _, took = request(port, "GET", "/health", timeout=30)
            times.append(took if status == 200 else float("inf"))
        except OSError:
            times.append(float("inf"))
        time.sleep(every)
    return times


def while_probing(port: int, attack: Callable[[], object]) -> dict:
    stop = threading.Event()
    result: list[list[float]] = []
    prober = threading.Thread(target=lambda: result.append(health_times(port, stop)))
    prober.start()
    attack()
    stop.set()
    prober.join()
    times = sorted(result[0])
    return {"health_probes": len(times), "health_max_s": round(times[-1], 3) if times else None,
            "health_median_s": round(times[len(times) // 2], 4) if times else None}  # fmt: skip


def echo_422(port: int, pid: int | None, clients: int = 8, rounds: int = 5, items: int = 120_000) -> dict:
    """/loss with {"words": [1, 1, ...]}: one timed, then `clients` x `rounds` while /health is probed."""
    body = b'{"words": [' + b",".join([b"1"] * items) + b"]}"
    status, answer, alone = request(port, "POST", "/loss", body)

    def flood() -> None:
        threads = [
            threading.Thread(target=lambda: [request(port, "POST", "/loss", body) for _ in range(rounds)])
            for _ in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return {"attack": f"/loss with {items:,} bad items ({len(body):,} bytes)", "status": status,
            "seconds_alone": round(alone, 3), "answer_bytes": len(answer),
            f"while {clients} clients x {rounds}": while_probing(port, flood)}  # fmt: skip


def idle_crowd(
    port: int, pid: int | None, sockets: int = 600, seconds: float = 8, probe_port: int | None = None
) -> dict:
    """`sockets` idle connections, each reopened when closed, for `seconds`; /health probed on a
    keep-alive connection opened before and on new connections (to `probe_port` when given)."""
    keep = connect(port, 5)
    keep.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(keep)[0] == 200
    stop = threading.Event()
    held: list[socket.socket] = []
    lock = threading.Lock()

    def crowd(count: int) -> None:
        mine: list[socket.socket | None] = [None] * count
        while not stop.is_set():
            for i in range(count):
                sock = mine[i]
                if sock is not None:
                    try:
                        sock.setblocking(False)
                        if sock.recv(1, socket.MSG_PEEK) == b"":
                            raise ConnectionResetError
                        continue
                    except BlockingIOError:
                        continue
                    except OSError:
                        sock.close()
                try:
                    mine[i] = socket.create_connection((HOST, port), timeout=2)
                except OSError:
                    mine[i] = None
            time.sleep(0.05)
        with lock:
            held.extend(s for s in mine if s is not None)

    threads = [threading.Thread(target=crowd, args=(sockets // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    fresh_ok = fresh = kept_ok = kept = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fresh += 1
        with contextlib.suppress(OSError):
            fresh_ok += request(probe_port or port, "GET", "/health", timeout=2)[0] == 200
        kept += 1
        try:
            keep.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            kept_ok += read_response(keep)[0] == 200
        except OSError:
            pass
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    for sock in held:
        sock.close()
    keep.close()
    return {"attack": f"{sockets} idle connections, reopened when closed", "probe_port": probe_port,
            "health_new_connection_ok": f"{fresh_ok}/{fresh}",
            "health_keepalive_ok": f"{kept_ok}/{kept}"}  # fmt: skip


def h2c(port: int, pid: int | None) -> dict:
    """POST /loss with curl --http2's upgrade headers."""
    status, answer, _ = request(port, "POST", "/loss", b'{"word":"emma"}', H2C)
    return {
        "attack": "POST /loss with Upgrade: h2c",
        "status": status,
        "answer": answer[:120].decode(errors="replace"),
    }


# every method llhttp parses (others are a 400 before the app)
LLHTTP_METHODS = [
    *("DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL"),
    *("MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT"),
    *("MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH"),
    *("PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY"),
]


def methods(port: int, pid: int | None) -> dict:
    """Every method llhttp parses on 4 paths; the size of /metrics before and after."""
    before = len(request(port, "GET", "/metrics")[1])
    for method in LLHTTP_METHODS:
        for path in ("/health", "/sample", "/nope", "/static/x"):
            with contextlib.suppress(OSError):
                request(port, method, path, timeout=5)
    after = len(request(port, "GET", "/metrics")[1])
    return {"attack": f"{len(LLHTTP_METHODS)} methods x 4 paths", "metrics_bytes_before": before,
            "metrics_bytes_after": after}  # fmt: skip


def burst_abandon(port: int, pid: int | None, clients: int = 700) -> dict:
    """`clients` /sample n=1000 to the MLP (a table: batched), each hung up at once; /health probed."""
    body = json.dumps({"model": "names-mlp", "n": 1000}).encode()
    head = b"POST /sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"

    def burst() -> None:
        socks = []
        for _ in range(clients):
            try:
                sock = connect(port, 10)
                sock.sendall(head % len(body) + body)
                socks.append(sock)
            except OSError:
                pass
        for sock in socks:
            sock.close()
        time.sleep(3)

    return {"attack": f"{clients} abandoned /sample n=1000 (names-mlp)", **while_probing(port, burst)}


def pipelined(port: int, pid: int | None, connections: int = 500) -> dict:
    """`connections` connections that each pipeline 20 /sample requests and reset at once (the
    server's log is to be read: lines and bytes it gained)."""
    body = json.dumps({"n": 100, "seed": 1}).encode()
    one = b"POST /sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    for _ in range(connections):
        with contextlib.suppress(OSError):
            sock = connect(port, 10)
            sock.sendall((one % len(body) + body) * 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
    time.sleep(3)
    return {"attack": f"{connections} connections reset with 20 pipelined requests each"}


ATTACKS: dict[str, Callable[..., dict]] = {
    "pipelined": pipelined,
    "burst-abandon": burst_abandon,
    "trailers": trailers,
    "extensions": extensions,
    "loss-transformer": loss_transformer,
    "sample-transformer": sample_transformer,
    "abandon": abandon,
    "echo-422": echo_422,
    "idle-crowd": idle_crowd,
    "h2c": h2c,
    "methods": methods,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, help="the server's pid, for its RSS")
    p.add_argument(
        "--probe-port", type=int, help="idle-crowd: probe /health on this port (NAMEGEN_PROBE_PORT)"
    )
    p.add_argument("attacks", nargs="+", choices=sorted(ATTACKS))
    args = p.parse_args(argv)
    for name in args.attacks:
        extra = {"probe_port": args.probe_port} if name == "idle-crowd" else {}
        print(json.dumps(ATTACKS[name](args.port, args.pid, **extra)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
