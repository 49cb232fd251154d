"""Measure the service against its ceilings in one run; write RESULTS.md and results.json.

    python -m bench.run            # or `make bench`; about 9 minutes
    python -m bench.run --seconds 1 --train-steps 200 --out /tmp/bench   # a quick smoke run

Timings on shared machines are noisy: every figure here is a median or a ratio measured in this
one run, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx
import torch
from threadpoolctl import threadpool_limits

from app.serving.service import choose_default, load_models
from app.settings import Settings
from bench.compute_limit import GEMM_SHAPE, gemm_gflops, small_dense_calls
from bench.compute_limit import measure as measure_compute
from bench.http_load import run_wrk
from bench.processes import ROOT, free_port, rss_mb, start_server, tree_pss_mb
from bench.report import MLP, TARGETS, render_markdown
from bench.sampling import measure as measure_sampling
from bench.sampling import names_per_second
from bench.training import notebook_loop, project_loop
from model.data import read_words, split_words
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.families.mlp import RECIPE, MLPConfig
from model.training.examples import Windows
from model.vocab import Vocab

WEIGHTS = ROOT / "weights"
REFERENCE_WORDS = ROOT.parent / "shared" / "data" / "names.txt"
IN_PROCESS_REPEATS = 150  # n=100 draws timed in process per round of the served-against-in-process target


def scoring_words(count: int, seed: int = 0) -> list[str]:
    """Made-up lowercase words (not the reference list) for /loss bodies."""
    rng = random.Random(seed)
    return [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
        for _ in range(count)
    ]


REQUESTS: list[tuple[str, str, dict]] = [
    ("sample n=1", "/sample", {"n": 1}),
    ("sample n=100", "/sample", {"n": 100}),
    ("next-char", "/next-char", {"prefix": "emm"}),
    ("loss 1 word", "/loss", {"word": "emma"}),
    ("loss 1,000 words", "/loss", {"words": scoring_words(1000)}),
]
# Every request against the MLP (named) and against the server's default model (unnamed).
ENDPOINTS: list[tuple[str, str, dict | None]] = [
    ("bare", "/bare", {"n": 1}),
    *[(f"mlp {name}", path, {"model": MLP, **body}) for name, path, body in REQUESTS],
    *[(f"default {name}", path, body) for name, path, body in REQUESTS],
]
# The order they run in: each request against the MLP and then against the default, so the two
# runs a "versus the MLP" ratio compares are seconds apart.
MEASURED_ORDER = [ENDPOINTS[0]] + [
    endpoint for name, _, _ in REQUESTS for endpoint in ENDPOINTS if endpoint[0].endswith(f" {name}")
]


def wait_until_idle(client: httpx.Client, limit_s: float = 120) -> None:
    """Let the server finish the backlog of the last cell, so it does not leak into the next."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        start = time.perf_counter()
        with contextlib.suppress(httpx.TransportError):
            client.get("/health", timeout=limit_s)
        if time.perf_counter() - start < 0.02:
            return
    raise RuntimeError(f"server still busy {limit_s} s after the load stopped")


def after_bare(
    base: str, client: httpx.Client, path: str, body: dict | None, concurrency: int, seconds: float
) -> tuple[dict, dict]:
    """A wrk run of the bare endpoint and right after it one of `path`, each left to finish its
    backlog: the pair a ratio to bare compares (seconds apart, as the machine's load drifts)."""
    _, bare_path, bare_body = ENDPOINTS[0]
    runs = []
    for url, sent in ((base + bare_path, bare_body), (base + path, body)):
        runs.append(run_wrk(url, sent, concurrency, seconds).as_dict())
        wait_until_idle(client)
    return runs[0], runs[1]


def measure_paired(
    base: str, client: httpx.Client, seconds: float, concurrencies: list[int], pairs: int
) -> tuple[dict[str, dict[str, dict]], dict[str, list[float]]]:
    """Every endpoint right after a run of the bare endpoint, `pairs` times over, so each ratio
    compares two runs seconds apart (machine load drifts). A cell is the endpoint's run with the
    median ratio; the bare row is the median bare run. A default cell also holds its ratio over
    the MLP's in the same round (`versus_mlp_rounds`, run right after it) and their median."""
    table: dict[str, dict[str, dict]] = {name: {} for name, _, _ in ENDPOINTS}
    bare_runs: dict[str, list[float]] = {}
    for c in concurrencies:
        bares, cells = [], {name: [] for name, _, _ in ENDPOINTS[1:]}
        for _ in range(pairs):
            for name, path, body in MEASURED_ORDER[1:]:
                bare, cell = after_bare(base, client, path, body, c, seconds)
                cell["ratio_to_bare"] = cell["requests_per_second"] / bare["requests_per_second"]
                cells[name].append(cell)
                bares.append(bare)
        for name, runs in cells.items():
            table[name][str(c)] = {
                **_median_run(runs, "ratio_to_bare"),
                "ratios": [r["ratio_to_bare"] for r in runs],
            }
            print(
                f"  {name:18s} c={c:<3d} {table[name][str(c)]['ratio_to_bare']:5.2f}x bare", file=sys.stderr
            )
        table["bare"][str(c)] = {**_median_run(bares, "requests_per_second"), "ratio_to_bare": 1.0}
        bare_runs[str(c)] = [run["requests_per_second"] for run in bares]
        for name, _, _ in REQUESTS:  # the default against the MLP, round by round
            mine, mlps = cells[f"default {name}"], cells[f"mlp {name}"]
            rounds = [m["ratio_to_bare"] / t["ratio_to_bare"] for m, t in zip(mine, mlps, strict=True)]
            table[f"default {name}"][str(c)].update(
                versus_mlp=statistics.median(rounds), versus_mlp_rounds=rounds
            )
    return table, bare_runs


def measure_served_over_in_process(
    base: str, client: httpx.Client, seconds: float, rounds: int, model: LanguageModel
) -> dict:
    """/sample n=100 at c=16, served, against `model` (the default, self-tested as the server runs
    it) drawing n=100 in this process on one thread, one right after the other, `rounds` times:
    each round's ratio compares two measurements seconds apart (machine load drifts)."""
    params = SamplingParams()
    out = []
    for _ in range(rounds):
        with threadpool_limits(1):
            here = names_per_second(lambda k, seed: model.sample(k, params, seed), 100, IN_PROCESS_REPEATS)
        served = 100 * run_wrk(base + "/sample", {"n": 100}, 16, seconds).as_dict()["requests_per_second"]
        wait_until_idle(client)
        out.append({"in_process_names_per_s": here, "served_names_per_s": served, "ratio": served / here})
    return {"rounds": out, "ratio": statistics.median(r["ratio"] for r in out)}


def _median_run(runs: list[dict], key: str) -> dict:
    return sorted(runs, key=lambda run: run[key])[len(runs) // 2]


def measure_http(
    seconds: float, concurrencies: list[int], pairs: int, rounds: int, default: LanguageModel
) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = start_server(port, module="bench.server", limit_s=60)
    plain_port = free_port()
    plain = start_server(plain_port, module="bench.plain", limit_s=60)
    client = httpx.Client(base_url=base)
    try:
        for _, path, body in ENDPOINTS:  # warm-up: every code path once under load
            run_wrk(base + path, body, 16, 1)
            wait_until_idle(client)
        memory = {"rss_mb_after_warmup": rss_mb(proc.pid), "tree_pss_mb_after_warmup": tree_pss_mb(proc.pid)}
        table, bare_runs = measure_paired(base, client, seconds, concurrencies, pairs)
        served_over_in_process = measure_served_over_in_process(base, client, seconds, pairs, default)
        plain_runs = measure_plain(f"http://127.0.0.1:{plain_port}", seconds, concurrencies, pairs)
        for cells in table.values():
            for c, cell in cells.items():
                cell["ratio_to_plain"] = cell["requests_per_second"] / statistics.median(plain_runs[c])
        memory["rss_mb_after_load"] = rss_mb(proc.pid)
        memory["tree_pss_mb_after_load"] = tree_pss_mb(proc.pid)
        memory["rss_mb_after_each_repeat"] = []
        for _ in range(rounds):  # the same load again and again: RSS must not keep growing
            for _, path, body in ENDPOINTS[1:]:
                run_wrk(base + path, body, 16, seconds)
                wait_until_idle(client)
            memory["rss_mb_after_each_repeat"].append(rss_mb(proc.pid))
    finally:
        client.close()
        for server in (proc, plain):
            server.terminate()
            server.wait(timeout=30)
    return {
        "endpoints": table,
        "bare_runs": bare_runs,
        "plain_runs": plain_runs,
        "served_over_in_process": served_over_in_process,
        "memory": memory,
    }


def measure_plain(base: str, seconds: float, concurrencies: list[int], pairs: int) -> dict[str, list[float]]:
    """Requests/s of the plain FastAPI endpoint (`bench.plain`), `pairs` runs at each concurrency."""
    run_wrk(base + "/plain", {"n": 1}, 16, 1)  # warm-up
    return {
        str(c): [
            run_wrk(base + "/plain", {"n": 1}, c, seconds).as_dict()["requests_per_second"]
            for _ in range(pairs)
        ]
        for c in concurrencies
    }


def measure_training(steps: int, data: Path | None, rounds: int) -> dict:
    """Both loops on the reference model and recipe (model.families.mlp), shortened to `steps`."""
    words = read_words(data) if data else scoring_words(5000, seed=1)
    vocab = Vocab.from_words(words)
    recipe = RECIPE.with_(steps=steps)
    splits = split_words(words, recipe.split_seed, recipe.split)
    config = MLPConfig(vocab.size)
    train = Windows.of(splits.train, vocab, config.block_size)
    val = Windows.of(splits.val, vocab, config.block_size)
    loops = {"project": project_loop, "notebook": notebook_loop}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    for round_ in range(rounds):  # back to back, first one then the other: drift hits both alike
        for name in sorted(loops, reverse=round_ % 2 == 1):
            runs[name].append(loops[name](train, val, config, recipe))
    source = str(data) if data else "generated words"
    result = {"steps": steps, "batch_size": recipe.batch_size, "rounds": rounds, "data": source}
    for name, pairs in runs.items():
        result[name] = {"steps_per_s": statistics.median(p[0] for p in pairs), "val_loss": pairs[-1][1]}
    ratios = [mine[0] / theirs[0] for mine, theirs in zip(runs["project"], runs["notebook"], strict=True)]
    result["round_ratios"] = ratios
    result["speed_ratio"] = statistics.median(ratios)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="duration of each HTTP load run")
    p.add_argument("--pairs", type=int, default=3, help="(bare, endpoint) run pairs per cell")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--repeats", type=int, default=3, help="repeated loads for the RSS growth check")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 10_000], help="sampling n values")
    p.add_argument("--sample-budget", type=float, default=2.0, help="rough seconds per sampling size")
    p.add_argument("--naive-cap", type=int, default=300, help="most names the naive loop is timed on")
    p.add_argument("--compute-runs", type=int, default=3, help="timings of --compute-names per compute round")
    p.add_argument("--compute-names", type=int, default=10_000, help="names per compute timing")
    p.add_argument("--train-steps", type=int, default=2000, help="steps per training run")
    p.add_argument("--train-rounds", type=int, default=5, help="runs of each training loop")
    p.add_argument("--data", type=Path, default=REFERENCE_WORDS if REFERENCE_WORDS.is_file() else None)
    p.add_argument("--out", type=Path, default=ROOT / "bench", help="folder for RESULTS.md, results.json")
    args = p.parse_args(argv)
    started = time.perf_counter()
    results: dict = {
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": args.seconds,
        "pairs": args.pairs,
    }
    torch.set_num_threads(1)
    with threadpool_limits(1):  # as the server's workers run
        models = load_models(Settings(weights=WEIGHTS, device="cpu"))
        for model in models.values():
            model.check_batching()  # self-tested as the server does: padded, the GRUs' prefix table used
    results["default_model"] = choose_default(models, None)
    print("HTTP ...", file=sys.stderr)
    results["http"] = measure_http(
        args.seconds, args.concurrency, args.pairs, args.repeats, models[results["default_model"]]
    )
    print("sampling ...", file=sys.stderr)
    with threadpool_limits(1):
        results["sampling"] = {
            name: measure_sampling(models[name], tuple(args.sizes), args.naive_cap, args.sample_budget)
            for name in dict.fromkeys([MLP, results["default_model"]])
        }
        print("compute limit ...", file=sys.stderr)
        kernels = gemm_gflops()
        results["compute"] = {
            "gemm_gflops": max(kernels.values()),
            "gemm_kernels": kernels,
            "gemm_shape": list(GEMM_SHAPE),
            "names": args.compute_names,
            "runs": args.compute_runs,
            "small_dense_calls": small_dense_calls(models[results["default_model"]]),
            "models": {
                name: measure_compute(model, names=args.compute_names, runs=args.compute_runs)
                for name, model in models.items()
                if not model.rows_independent  # the forward-pass models (a table draws by lookups)
            },
        }
    print("training ...", file=sys.stderr)
    results["training"] = measure_training(args.train_steps, args.data, args.train_rounds)
    results["wall_seconds"] = time.perf_counter() - started
    results["targets"] = {}
    for name, check in TARGETS:
        try:
            results["targets"][name] = bool(check(results))
        except (KeyError, StopIteration):
            results["targets"][name] = False  # not measured in this run (e.g. other sizes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(render_markdown(results))
    print(render_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
