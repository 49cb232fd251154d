"""Two replicas behind HAProxy (standing in for a Kubernetes Service), all on 127.0.0.1.

Replicas are interchangeable: the same seeded request gives the same bytes through either. And a
replica drained the way Kubernetes removes a pod (out of the balancer, a pause like the preStop
sleep, then SIGTERM) costs no request under load. HAProxy is set to never retry, as kube-proxy
does not, so a request sent to a replica that stopped accepting would fail here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, serve_command

HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).is_file()), None
)
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")

SEEDED = {"n": 5, "seed": 42}
CLIENTS = 4  # load threads
LOAD_SECONDS = 2.0  # of load before the drain starts and after the replica has exited
PRE_STOP_PAUSE = 1.0  # deploy/k8s sleeps 10 s; endpoints propagate faster on one machine


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited: {log.read_text()}"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not become healthy within {timeout} s")


class Replica:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name, self.port, self.log = name, free_port(), tmp / f"{name}.log"
        env = {
            **os.environ,
            "NAMEGEN_HOST": "127.0.0.1",
            "NAMEGEN_PORT": str(self.port),
            "NAMEGEN_DEVICE": "cpu",
            "NAMEGEN_ACCESS_LOG": "false",
            "NAMEGEN_WORKERS": "1",
            "OMP_NUM_THREADS": "1",
        }
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                serve_command(), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class HAProxy:
    def __init__(self, tmp: Path, replicas: list[Replica]) -> None:
        self.port, self.socket_path = free_port(), tmp / "haproxy.sock"
        servers = "\n".join(
            f"    server {r.name} 127.0.0.1:{r.port} check inter 500ms fall 2 rise 1" for r in replicas
        )
        config = tmp / "haproxy.cfg"
        config.write_text(
            f"""global
    stats socket {self.socket_path} mode 600 level admin
    maxconn 256
defaults
    mode http
    retries 0
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /health
    http-response set-header X-Replica %s
{servers}
""",
            encoding="utf-8",
        )
        check = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = tmp / "haproxy.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def admin(self, command: str) -> str:
        """One command on HAProxy's runtime API (what a controller would send)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket_path))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, str]:
        """srv_op_state by server name (`show servers state`: 2 = running)."""
        rows = [line.split() for line in self.admin("show servers state be").splitlines()[2:]]
        return {row[3]: row[5] for row in rows if len(row) > 5}

    def served(self) -> dict[str, int]:
        """Responses each server sent (`show stat`: hrsp_1xx..5xx summed) by server name."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        counts = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "be" and row.get("svname") not in ("BACKEND", "FRONTEND", None):
                counts[row["svname"]] = sum(int(row[f"hrsp_{k}xx"] or 0) for k in range(1, 6))
        return counts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Started once: the drain test, last in this file, leaves s1 stopped."""
    tmp_path = tmp_path_factory.mktemp("scale-out")
    replicas = [Replica("s1", tmp_path), Replica("s2", tmp_path)]
    proxy = None
    try:
        for replica in replicas:
            _wait_healthy(replica.url, replica.proc, replica.log)
        proxy = HAProxy(tmp_path, replicas)
        deadline = time.monotonic() + 10  # both servers up (srv_op_state 2) in HAProxy's checks
        while not proxy.socket_path.exists():
            assert proxy.proc.poll() is None and time.monotonic() < deadline, proxy.log.read_text()
            time.sleep(0.05)
        while proxy.server_states() != {"s1": "2", "s2": "2"}:
            assert time.monotonic() < deadline, proxy.admin("show servers state be")
            time.sleep(0.1)
        yield proxy, replicas
    finally:
        if proxy is not None:
            proxy.stop()
        for replica in replicas:
            replica.stop()


def test_same_seeded_request_gives_the_same_bytes_through_either_replica(cluster):
    proxy, replicas = cluster
    direct = {r.name: httpx.post(f"{r.url}/sample", json=SEEDED).content for r in replicas}
    assert direct["s1"] == direct["s2"]
    through: dict[str, set[bytes]] = {}
    with httpx.Client(base_url=proxy.url) as client:
        for _ in range(10):
            response = client.post("/sample", json=SEEDED)
            assert response.status_code == 200
            through.setdefault(response.headers["X-Replica"], set()).add(response.content)
    assert through == {"s1": {direct["s1"]}, "s2": {direct["s1"]}}, "round robin over both, same bytes"


def test_draining_a_replica_under_load_fails_no_request(cluster):
    proxy, replicas = cluster
    s1 = replicas[0]
    with httpx.Client() as probe:
        expected = probe.post(f"{s1.url}/sample", json=SEEDED).content
    served_before = proxy.served()
    stop = threading.Event()
    lock = threading.Lock()
    ok: dict[str, int] = {}
    failures: list[str] = []

    def load(worker: int) -> None:
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    if i % 2:
                        response = client.post("/sample", json=SEEDED)
                        good = response.status_code == 200 and response.content == expected
                    else:
                        response = client.post("/loss", json={"words": ["emma", "olivia", "noah"]})
                        good = response.status_code == 200
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"client {worker}: {exc!r}")
                    continue
                with lock:
                    if good:
                        replica = response.headers.get("X-Replica", "?")
                        ok[replica] = ok.get(replica, 0) + 1
                    else:
                        failures.append(f"client {worker}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(LOAD_SECONDS)
        before = dict(ok)
        # Kubernetes: the pod leaves the Service's endpoints, preStop sleeps, then SIGTERM.
        assert proxy.admin("set server be/s1 state maint").strip() == ""
        time.sleep(PRE_STOP_PAUSE)
        sigterm_at = time.monotonic()
        s1.proc.send_signal(signal.SIGTERM)
        exit_code = s1.proc.wait(timeout=30)
        shutdown_s = time.monotonic() - sigterm_at
        time.sleep(LOAD_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    served = {name: count - served_before[name] for name, count in proxy.served().items()}
    total = sum(ok.values())
    print(
        f"\ndrain under load ({CLIENTS} clients): {total} requests ok, {len(failures)} failed; "
        f"by replica {dict(sorted(ok.items()))} (before the drain {dict(sorted(before.items()))}); "
        f"HAProxy responses per server {served}; s1 exited {exit_code} {shutdown_s:.2f} s after SIGTERM"
    )
    assert failures == []
    # uvicorn re-raises the SIGTERM after its clean shutdown, so the status says "killed by SIGTERM".
    assert exit_code in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in s1.log.read_text()
    assert before.get("s1", 0) > 0 and before.get("s2", 0) > 0, "both replicas served before the drain"
    assert ok["s2"] > before["s2"], "the remaining replica kept serving"
    assert served == ok, "HAProxy's counts agree: no request reached a replica unseen"
    assert total > 100
