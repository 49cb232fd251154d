"""`make soak`: a bounded load against a real server on 127.0.0.1, then hostile bursts.

1. Soak: `--concurrency` (64) clients for `--seconds` (60) send mixed requests (sample, seeded
   sample, novel sample, next-char, loss, batch loss, models, health) to every model GET /models
   lists. Every seeded request must give the bytes it gave alone before the load; statuses are
   counted (anything but 200, or a 503 from the bounded queue, fails the soak).
2. Bursts (issue 12, class 4): `--stalled` (150) clients each ask for a 4.4 MB /loss answer and
   never read it; then `--bursts` (4) bursts of 256 concurrent heavy requests.
3. Attacks (issue 21, `bench.attacks`): 40 MiB of chunked trailers, a 20 MB chunk extension, 8
   heavy transformer requests whose clients hang up, and 600 idle connections reopened as soon as
   they are closed while /health is probed on the probe port and on a keep-alive connection.
The memory of the server and its model processes (`--processes`, their PSS summed: shared pages
count once) is sampled every 0.2 s throughout and must stay below the pod's limit plus
`PROCESS_MEMORY_MB` a process.
Results: bench/soak.json and bench/SOAK.md.

    .venv/bin/python -m bench.soak [--seconds 60] [--root DIR]   # --root: serve another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench import attacks
from bench.processes import HOST, ROOT, free_port, start_server, tree_pss_mb

# The server runs as a 2-CPU replica would: two model processes (--processes). Its memory limit
# is the pod's 704 MiB (one worker, no processes: deploy/k8s/deployment.yaml) plus 192 MiB a
# process (about 170 measured at start-up, and a margin for their buffers under load).
PROCESSES = 2
POD_MEMORY_MB, PROCESS_MEMORY_MB = 704, 192
LONG_WORD = ("abcdefghijklmnopqrstuvwxyz" * 3)[:64]
BIG_LOSS = json.dumps({"words": [LONG_WORD] * 1000}).encode()  # answered with about 4.4 MB


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self.stopped = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopped.is_set():
            try:
                self.samples.append((round(time.monotonic() - start, 2), round(tree_pss_mb(self.pid), 1)))
            except FileNotFoundError:
                return
            time.sleep(self.every)

    def peak_since(self, index: int) -> float:
        return max((mb for _, mb in self.samples[index:]), default=float("nan"))


def request_mix(models: list[str]) -> list[tuple[str, str, dict | None, bool]]:
    """(label, path, body, seeded): each request kind for each model."""
    mix: list[tuple[str, str, dict | None, bool]] = [("models", "/models", None, False)]
    mix.append(("health", "/health", None, False))
    for m in models:
        mix += [
            (f"{m} sample", "/sample", {"model": m, "n": 10}, False),
            (f"{m} sample seeded", "/sample", {"model": m, "n": 20, "seed": 7, "temperature": 0.9}, True),
            (f"{m} sample novel", "/sample", {"model": m, "n": 20, "novel": True, "seed": 3}, True),
            (f"{m} next-char", "/next-char", {"model": m, "prefix": "ma"}, True),
            (f"{m} loss", "/loss", {"model": m, "word": "emma"}, True),
            (f"{m} loss batch", "/loss", {"model": m, "words": ["olivia", "noah", "liam"] * 10}, True),
        ]
    return mix


async def soak(url: str, seconds: float, concurrency: int) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        models = [m["name"] for m in (await client.get("/models")).json()["models"]]
        mix = request_mix(models)
        expected = {}
        for label, path, body, seeded in mix:  # each seeded answer alone, before the load
            if seeded:
                expected[label] = (await client.post(path, json=body)).content
        statuses: Counter[str] = Counter()
        mismatches: list[str] = []
        errors: list[str] = []
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def worker(k: int) -> None:
            rng = random.Random(k)
            while time.monotonic() < deadline:
                label, path, body, seeded = rng.choice(mix)
                start = time.perf_counter()
                try:
                    if body is None:
                        response = await client.get(path)
                    else:
                        response = await client.post(path, json=body)
                except httpx.HTTPError as exc:
                    errors.append(f"{label}: {exc!r}")
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[str(response.status_code)] += 1
                if seeded and response.status_code == 200 and response.content != expected[label]:
                    mismatches.append(label)

        start = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        took = time.monotonic() - start
    latencies.sort()
    total = sum(statuses.values())
    return {
        "models": models,
        "seconds": round(took, 1),
        "concurrency": concurrency,
        "requests": total,
        "requests_per_second": round(total / took, 1),
        "statuses": dict(statuses),
        "seeded_mismatches": len(mismatches),
        "seeded_kinds": len(expected),
        "transport_errors": len(errors),
        "first_errors": errors[:5],
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
    }


def stalled_clients(port: int, count: int, hold: float) -> dict:
    """`count` clients ask for the 4.4 MB answer and never read it, for `hold` seconds."""
    head = b"POST /loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((HOST, port))
        s.sendall(head % len(BIG_LOSS) + BIG_LOSS)
        socks.append(s)
    time.sleep(hold)
    cut_short = 0
    for s in socks:  # read what is left: an answer the server dropped ends short of its length
        s.settimeout(2)
        got = bytearray()
        try:
            while chunk := s.recv(1 << 20):
                got += chunk
                head, _, body = bytes(got).partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(body) >= length:
                    break
            else:
                cut_short += 1
        except TimeoutError:
            pass
        except OSError:
            cut_short += 1
        s.close()
    return {"clients": count, "held_s": hold, "answers_cut_short": cut_short}


def burst_body(i: int) -> tuple[str, dict]:
    """The i-th request of a burst: mostly 1,000 names with a setting of its own (no two share a
    pass), some 4.4 MB /loss answers, some GRU samples, some novel-only."""
    kind = i % 8
    if kind == 0:
        return "/loss", {"model": "names-mlp", "words": [LONG_WORD] * 1000}
    if kind == 1:
        return "/sample", {"model": "names-gru", "n": 200, "seed": i}
    if kind == 2:
        return "/sample", {"model": "names-mlp", "n": 1000, "novel": True, "top_k": 1}
    return "/sample", {"model": "names-mlp", "n": 1000, "temperature": round(0.5 + i / 256, 3)}


async def burst(url: str, size: int) -> Counter[str]:
    limits = httpx.Limits(max_connections=size)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(i: int) -> str:
            path, body = burst_body(i)
            try:
                return str((await client.post(path, json=body)).status_code)
            except httpx.HTTPError as exc:
                return type(exc).__name__

        return Counter(await asyncio.gather(*(one(i) for i in range(size))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--stalled", type=int, default=150)
    p.add_argument("--stalled-hold", type=float, default=35.0, help="how long the stalled clients wait")
    p.add_argument("--bursts", type=int, default=4)
    p.add_argument("--burst-size", type=int, default=256)
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve (compare before/after)")
    p.add_argument("--processes", type=int, default=PROCESSES, help="the server's model processes")
    p.add_argument("--out", type=Path, default=ROOT / "bench")
    args = p.parse_args(argv)
    port = free_port()
    url = f"http://{HOST}:{port}"
    args.out.mkdir(parents=True, exist_ok=True)
    server_log = Path(tempfile.mkdtemp()) / "soak-server.log"
    probe_port = free_port()
    try:
        env = {
            "NAMEGEN_DEVICE": "cpu",
            "NAMEGEN_ACCESS_LOG": "false",
            "NAMEGEN_PROBE_PORT": str(probe_port),
            "NAMEGEN_PROCESSES": str(args.processes),
        }
        proc = start_server(port, root=args.root, log=server_log, env=env)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    sampler = MemorySampler(proc.pid)
    sampler.start()
    results: dict = {
        "root": str(args.root),
        "processes": args.processes,
        "memory_limit_mb": POD_MEMORY_MB + PROCESS_MEMORY_MB * args.processes,
        "memory_mb_idle_start": tree_pss_mb(proc.pid),
        "log": str(server_log),
    }
    try:
        mark = len(sampler.samples)
        results["soak"] = asyncio.run(soak(url, args.seconds, args.concurrency))
        results["soak"]["memory_mb_peak"] = sampler.peak_since(mark)
        results["memory_mb_after_soak"] = tree_pss_mb(proc.pid)
        mark = len(sampler.samples)
        results["stalled"] = stalled_clients(port, args.stalled, args.stalled_hold)
        results["stalled"]["memory_mb_peak"] = sampler.peak_since(mark)
        time.sleep(1)
        results["memory_mb_after_stalled"] = tree_pss_mb(proc.pid)
        results["bursts"] = []
        for _ in range(args.bursts):
            mark = len(sampler.samples)
            statuses = asyncio.run(burst(url, args.burst_size))
            results["bursts"].append({
                "statuses": dict(statuses), "memory_mb_peak": sampler.peak_since(mark),
                "memory_mb_after": tree_pss_mb(proc.pid),
            })  # fmt: skip
        mark = len(sampler.samples)
        results["attacks"] = {
            "trailers": attacks.trailers(port, None, mib=40),
            "extensions": attacks.extensions(port, None, mib=20),
            "abandon": attacks.abandon(port, None),
            "idle_crowd": attacks.idle_crowd(port, None, probe_port=probe_port),
        }
        results["attacks"]["memory_mb_peak"] = sampler.peak_since(mark)
        time.sleep(2)
        results["memory_mb_idle_end"] = tree_pss_mb(proc.pid)
        results["health_after"] = httpx.get(f"{url}/health", timeout=10).status_code
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        sampler.stopped.set()
    results["memory_mb_peak_overall"] = max(mb for _, mb in sampler.samples)
    results["memory_samples"] = sampler.samples
    soak_ok = (
        results["soak"]["seeded_mismatches"] == 0
        and results["soak"]["transport_errors"] == 0
        and set(results["soak"]["statuses"]) <= {"200", "503"}
    )
    a = results["attacks"]
    crowd = a["idle_crowd"]["health_new_connection_ok"].split("/")
    attacks_ok = (
        a["trailers"]["status"] == 431
        and a["extensions"]["status"] == 413
        and a["abandon"]["status"] == 200
        and a["abandon"]["next_request_seconds"] < 10
        and crowd[0] == crowd[1]
    )
    results["pass"] = (
        soak_ok
        and attacks_ok
        and results["memory_mb_peak_overall"] < results["memory_limit_mb"]
        and results["health_after"] == 200
    )
    (args.out / "soak.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "SOAK.md").write_text(render(results, args), encoding="utf-8")
    print((args.out / "SOAK.md").read_text())
    return 0 if results["pass"] else 1


def _mbs(values) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def render(r: dict, args: argparse.Namespace) -> str:
    s = r["soak"]
    a = r["attacks"]
    bursts = r["bursts"]
    burst_statuses: Counter[str] = Counter()
    for b in bursts:
        burst_statuses.update(b["statuses"])
    return "\n".join([
        "# Soak (`make soak`, bench/soak.py)",
        "",
        f"Server: `python -m app` from {r['root']}, defaults but {r['processes']} model processes, every "
        f"committed model, 127.0.0.1. Result: **{'PASS' if r['pass'] else 'FAIL'}** (seeded bytes "
        "identical, no transport error, only 200 or 503 answers, every attack held, memory below "
        f"{r['memory_limit_mb']} MiB throughout, /health 200 at the end).",
        "",
        f"## Soak: {s['concurrency']} clients, {s['seconds']} s, mixed endpoints, {len(s['models'])} models",
        "",
        f"- {s['requests']:,} requests, {s['requests_per_second']:,} req/s, p50 {s['p50_ms']} ms, "
        f"p99 {s['p99_ms']} ms",
        f"- statuses: {s['statuses']}; transport errors: {s['transport_errors']}",
        f"- seeded requests ({s['seeded_kinds']} kinds) that differed from their answer alone: "
        f"{s['seeded_mismatches']}",
        f"- memory: {r['memory_mb_idle_start']:.0f} MB idle at start, peak {s['memory_mb_peak']:.0f} MB, "
        f"{r['memory_mb_after_soak']:.0f} MB after",
        "",
        f"## {r['stalled']['clients']} clients that never read a 4.4 MB /loss answer, held "
        f"{r['stalled']['held_s']:.0f} s",
        "",
        f"- memory peak {r['stalled']['memory_mb_peak']:.0f} MB, "
        f"{r['memory_mb_after_stalled']:.0f} MB after; "
        f"answers the server cut short (dropped): {r['stalled']['answers_cut_short']}",
        "",
        f"## {len(bursts)} bursts of {args.burst_size} concurrent heavy requests",
        "",
        "(per 8: 1 x /loss of 1,000 64-character words (4.4 MB), 1 x GRU n=200, 1 x MLP n=1000 novel "
        "top_k=1, 5 x MLP n=1000 each with its own temperature)",
        "",
        f"- statuses over all bursts: {dict(burst_statuses)}",
        f"- memory peak per burst (MB): {_mbs(b['memory_mb_peak'] for b in bursts)}",
        f"- memory after each burst (MB): {_mbs(b['memory_mb_after'] for b in bursts)}",
        "",
        "## Attacks (issue 21, bench/attacks.py)",
        "",
        f"- 40 MiB of chunked trailers: {a['trailers']['status']} after {a['trailers']['seconds']} s",
        f"- a 20 MB chunk extension: {a['extensions']['status']}",
        f"- {a['abandon']['attack']}: the small request answered {a['abandon']['status']} in "
        f"{a['abandon']['next_request_seconds']} s",
        f"- {a['idle_crowd']['attack']}: /health on the probe port "
        f"{a['idle_crowd']['health_new_connection_ok']} ok, on a keep-alive connection opened before "
        f"{a['idle_crowd']['health_keepalive_ok']} ok",
        f"- memory peak during the attacks {a['memory_mb_peak']:.0f} MB",
        "",
        f"- idle memory at the end {r['memory_mb_idle_end']:.0f} MB; peak over the whole run "
        f"{r['memory_mb_peak_overall']:.0f} MB",
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
