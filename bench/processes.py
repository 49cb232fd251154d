"""The server processes the benchmarks start and watch: where they run, their port, their memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid`, in MB (FileNotFoundError once it has exited)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # a zombie has no VmRSS


def descendants(pid: int) -> list[int]:
    """The processes started by `pid`, their children and so on (a server's model processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def tree_pss_mb(pid: int) -> float:
    """The proportional memory (PSS) of `pid` and its descendants, in MB: pages they share (the
    model processes fork from one forkserver) count once, as the container's memory limit counts them."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            lines = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("Pss:"))
    return total / 1024


def wait_until_healthy(proc: subprocess.Popen, url: str, limit_s: float) -> None:
    """Poll `url`/health until it answers 200; RuntimeError if `proc` exits or `limit_s` passes."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited during start-up (exit code {proc.returncode})")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become healthy within {limit_s:.0f} s")


def start_server(
    port: int,
    *,
    module: str = "app",
    root: Path = ROOT,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    limit_s: float = 120,
) -> subprocess.Popen:
    """`python -m module` serving on HOST:`port` from checkout `root`, healthy, its output in `log`
    (discarded when None); RuntimeError with the log when it does not come up."""
    full_env = {**os.environ, "NAMEGEN_HOST": HOST, "NAMEGEN_PORT": str(port), **(env or {})}
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=root, env=full_env, stdout=out, stderr=out
        )
    finally:
        if log is not None:
            out.close()
    try:
        wait_until_healthy(proc, f"http://{HOST}:{port}", limit_s)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: {log.read_text()}" if log is not None else str(exc)) from None
    return proc
