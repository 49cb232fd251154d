"""Server memory and event-loop latency while /sample streams a bulk export (issue 22).

    python -m bench.export [--model names-mlp] [--n 100000]

Starts `python -m app` on a free port, warms it with one 1,000-name export, then streams the
export as CSV and as NDJSON, sampling the server's RSS every 20 ms and timing GET /health every
10 ms while it streams. Prints one line per format: rows, bytes, seconds, RSS before / peak /
after, and /health's median and slowest answer during the stream (the event loop stays free when
every chunk is drawn on a worker thread).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx

from bench.processes import HOST, free_port, rss_mb, start_server

FORMATS = ("text/csv", "application/x-ndjson")


def measure(url: str, pid: int, model: str, n: int, accept: str) -> str:
    peak, health, done = [rss_mb(pid)], [], threading.Event()
    before = peak[0]

    def watch() -> None:
        with httpx.Client(base_url=url) as client:
            while True:  # at least one probe, however quick the export
                peak[0] = max(peak[0], rss_mb(pid))
                start = time.perf_counter()
                client.get("/health")
                health.append(1000 * (time.perf_counter() - start))
                if done.is_set():
                    break
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start, size, lines = time.perf_counter(), 0, 0
    body = {"model": model, "n": n, "seed": 7}
    headers = {"Accept": accept}
    with httpx.stream("POST", f"{url}/sample", json=body, headers=headers, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    return (
        f"{model} n={n:,} {accept}: {lines:,} lines, {size / 1e6:.1f} MB in {seconds:.1f} s; server RSS "
        f"{before:.1f} MB before, {peak[0]:.1f} peak, {rss_mb(pid):.1f} after; /health during it: median "
        f"{statistics.median(health):.1f} ms, slowest {max(health):.1f} ms ({len(health)} probes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="names-mlp")
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    proc = start_server(port, env={"NAMEGEN_DEVICE": "cpu", "NAMEGEN_ACCESS_LOG": "false"})
    url = f"http://{HOST}:{port}"
    try:
        warm = {"model": args.model, "n": 1000, "seed": 1}
        httpx.post(f"{url}/sample", json=warm, headers={"Accept": "text/csv"}, timeout=600).raise_for_status()
        for accept in FORMATS:
            print(measure(url, proc.pid, args.model, args.n, accept), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
