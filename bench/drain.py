"""How long a replica takes to drain its worst backlog after SIGTERM (the k8s grace period's input).

    python -m bench.drain                       # 64 connections of 1,000-word /loss on the default
    python -m bench.drain --connections 48 --env NAMEGEN_MAX_QUEUE=48

A `python -m app` with one worker (as the pod runs) gets `--connections` concurrent requests, each
scoring 1,000 words; once every request is sent and the server is busy with them, SIGTERM. It
reports the seconds from SIGTERM to exit, the answers by status, and the seconds per request the
server needed (so a queue bound can be derived: a budget of B seconds drains B / per-request jobs).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import threading
import time
from collections import Counter

import httpx

from bench.processes import HOST, free_port, start_server
from bench.run import scoring_words


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--words", type=int, default=1000, help="words per /loss request")
    p.add_argument("--model", default=None, help="the model to load (default: the server's default)")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)")
    args = p.parse_args(argv)
    port = free_port()
    env = {"NAMEGEN_WORKERS": "1", "NAMEGEN_DEVICE": "cpu", "NAMEGEN_ACCESS_LOG": "false"}
    env |= dict(item.split("=", 1) for item in args.env)
    proc = start_server(port, env=env)
    url = f"http://{HOST}:{port}"
    body = {"words": scoring_words(args.words)} | ({"model": args.model} if args.model else {})
    alone = []
    for _ in range(3):  # one request alone: the per-request cost
        start = time.perf_counter()
        httpx.post(f"{url}/loss", json=body, timeout=120).raise_for_status()
        alone.append(time.perf_counter() - start)
    statuses: Counter[str] = Counter()
    sent = threading.Barrier(args.connections + 1)

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            sent.wait()
            try:
                statuses[str(http.post(f"{url}/loss", json=body).status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1

    threads = [threading.Thread(target=client) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    sent.wait()
    time.sleep(0.5)  # every request has arrived and the backlog is queued
    stopped = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=600)
    drain = time.perf_counter() - stopped
    for thread in threads:
        thread.join()
    result = {
        "connections": args.connections,
        "words": args.words,
        "env": env,
        "seconds_per_request_alone_median": round(statistics.median(alone), 3),
        "seconds_sigterm_to_exit": round(drain, 2),
        "exit_code": code,
        "answers": dict(statuses),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
