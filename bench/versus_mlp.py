"""One of `make bench`'s "default against the MLP" rounds, many times over, on one server.

A round is the bench's own (`bench.run.measure_paired`): the bare endpoint, the request against
the MLP, the bare endpoint again, the request against the default, each a wrk run at one
concurrency; its figure is the default's ratio to its bare run over the MLP's ratio to its own.
`make bench` reports the median of 3 rounds, and on a 2-core machine that shares its cores with
wrk a round moves by 0.1 and more, so near the target (0.8) 3 rounds decide by chance. This
prints every round, the median of all of them, how many reach the target, and the medians that
3-round bench runs would have reported:

    .venv/bin/python -m bench.versus_mlp --rounds 21 --request "sample n=1"
"""

from __future__ import annotations

import argparse
import statistics
import sys

import httpx

from bench.http_load import run_wrk
from bench.processes import free_port, start_server
from bench.report import MLP
from bench.run import REQUESTS, after_bare, wait_until_idle

TARGET = 0.8  # the issue-19 targets of n=1 and one-word /loss over the MLP's
BENCH_ROUNDS = 3  # rounds a `make bench` run takes the median of


def measure(request: str, rounds: int, seconds: float, concurrency: int) -> list[float]:
    """Each round's default-over-MLP ratio for `request` (a name in `bench.run.REQUESTS`)."""
    path, body = next((path, body) for name, path, body in REQUESTS if name == request)
    rate = "requests_per_second"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, module="bench.server", limit_s=60)
    client = httpx.Client(base_url=base)
    bodies = ({"model": MLP, **body}, body)  # the MLP's request, then the default's
    ratios = []
    try:
        for sent in bodies:  # warm-up: both paths once under load
            run_wrk(base + path, sent, concurrency, 1)
            wait_until_idle(client)
        for number in range(1, rounds + 1):
            (mlp_bare, mlp), (default_bare, default) = (
                [run[rate] for run in after_bare(base, client, path, sent, concurrency, seconds)]
                for sent in bodies
            )
            ratios.append((default / default_bare) / (mlp / mlp_bare))
            print(
                f"round {number}: {ratios[-1]:.2f} (default {default:,.0f} req/s, bare {default_bare:,.0f}; "
                f"MLP {mlp:,.0f}, bare {mlp_bare:,.0f})",
                flush=True,
            )
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)
    return ratios


def summary(ratios: list[float]) -> str:
    """The median, the rounds at the target, and the medians of consecutive bench-sized groups."""
    groups = [
        statistics.median(ratios[i : i + BENCH_ROUNDS])
        for i in range(0, len(ratios) - BENCH_ROUNDS + 1, BENCH_ROUNDS)
    ]
    return (
        f"median of {len(ratios)} rounds: {statistics.median(ratios):.2f}; rounds >= {TARGET}: "
        f"{sum(ratio >= TARGET for ratio in ratios)} of {len(ratios)}; medians of {BENCH_ROUNDS} "
        f"consecutive rounds, as `make bench` reports: {', '.join(f'{g:.2f}' for g in groups) or 'none'}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--request", default="sample n=1", choices=[name for name, _, _ in REQUESTS])
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--seconds", type=float, default=2.0, help="duration of each wrk run (the bench's)")
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)
    ratios = measure(args.request, args.rounds, args.seconds, args.concurrency)
    print(summary(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
