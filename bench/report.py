"""What `make bench` measured, judged and written down: the targets, and RESULTS.md."""

from __future__ import annotations

import math
import statistics

MLP = "names-mlp"  # the seed's model, kept to its own targets beside the default


TARGETS = [
    ("mlp /sample n=1 at c=16 >= 0.7x bare", lambda r: _ratio(r, "mlp sample n=1") >= 0.7),
    ("mlp /next-char at c=16 >= 0.7x bare", lambda r: _ratio(r, "mlp next-char") >= 0.7),
    ("mlp /loss 1 word at c=16 >= 0.7x bare", lambda r: _ratio(r, "mlp loss 1 word") >= 0.7),
    ("mlp /sample n=100 at c=16 >= 0.5x bare", lambda r: _ratio(r, "mlp sample n=100") >= 0.5),
    ("mlp /loss 1,000 words p50 < 50 ms (c=1)", lambda r: _p50(r, "mlp loss 1,000 words") < 50),
    (
        "mlp sampler n=10,000 >= 100,000 names/s",
        lambda r: _sampling(r, MLP, 10_000)["sampler_names_per_s"] >= 1e5,
    ),
    ("mlp sampler n=10,000 >= 100x naive", lambda r: _sampling(r, MLP, 10_000)["speedup"] >= 100),
    ("default /sample n=1 at c=16 >= 0.5x bare", lambda r: _ratio(r, "default sample n=1") >= 0.5),
    ("default /loss 1,000 words p50 < 100 ms (c=1)", lambda r: _p50(r, "default loss 1,000 words") < 100),
    ("default sampler n=10,000 >= 10,000 names/s", lambda r: _names_per_s(r, r["default_model"]) >= 10_000),
    (
        "default sampler n=10,000 >= 10x makemore's generate",
        lambda r: _sampling(r, r["default_model"], 10_000)["speedup_vs_makemore"] >= 10,
    ),
    # issue 19, section 2: the default forward-pass model served near the table's speed
    (
        "default /sample n=1 at c=16 >= 0.8x the mlp's ratio",
        lambda r: _versus_mlp(r, "sample n=1") >= 0.8,
    ),
    (
        "default /loss 1 word at c=16 >= 0.8x the mlp's ratio",
        lambda r: _versus_mlp(r, "loss 1 word") >= 0.8,
    ),
    (
        "default /sample n=100 at c=16: served names/s >= 1.5x in-process n=100",
        lambda r: r["http"]["served_over_in_process"]["ratio"] >= 1.5,
    ),
    (
        "default sampler n=10,000 >= 60% of one core's compute limit",
        lambda r: r["compute"]["models"][r["default_model"]]["share_of_limit"] >= 0.6,
    ),
    ("training steps/s >= notebook loop", lambda r: r["training"]["speed_ratio"] >= 1.0),
    (
        "server RSS after load (every model) < 500 MB",
        lambda r: r["http"]["memory"]["rss_mb_after_load"] < 500,
    ),
]


def _ratio(results: dict, name: str) -> float:
    return results["http"]["endpoints"][name]["16"]["ratio_to_bare"]


def _versus_mlp(results: dict, request: str) -> float:
    """The median over rounds of the default's ratio to bare over the MLP's, at c=16."""
    return results["http"]["endpoints"][f"default {request}"]["16"]["versus_mlp"]


def _p50(results: dict, name: str) -> float:
    return results["http"]["endpoints"][name]["1"]["p50_ms"] or math.inf


def _names_per_s(results: dict, model: str) -> float:
    return _sampling(results, model, 10_000)["sampler_names_per_s"]


def _sampling(results: dict, model: str, n: int) -> dict:
    return next(row for row in results["sampling"][model] if row["n"] == n)


def _ms(value: float | None) -> str:
    return "none completed" if value is None else f"{value:.2f}"


def _rounds(row: dict) -> str:
    shares = row.get("round_shares")
    return f" ({', '.join(f'{share:.0%}' for share in shares)})" if shares else ""


def _gemm_kernels(compute: dict) -> str:
    """Each measured kernel's GFLOP/s (a run before kernels were compared measured torch's alone)."""
    kernels = compute.get("gemm_kernels") or {"torch.mm": compute["gemm_gflops"]}
    return ", ".join(f"{name} {gflops:.0f} GFLOP/s" for name, gflops in kernels.items())


def _small_dense_lines(calls: dict | None) -> list[str]:
    """What the default's dense layer costs a call at the batches n=1 requests make (a run from before
    it was measured, or a default without NumPy steps, says nothing; the first runs did not record
    their 300 timed calls and 200 counted passes)."""
    if not calls:
        return []
    costs = calls["us_per_call"].items()
    rows = ", ".join(f"{rows} row{'s' * (rows != '1')} {us:.0f} us" for rows, us in costs)
    l2 = f"{calls['l2_kib']:,} KiB" if calls["l2_kib"] else "not reported"
    out, inp = calls["weight"]
    tiny_out, tiny_in = calls["tiny_layer"]
    return [
        "",
        f"The default's dense layer, the one GEMM of its step ({out} x {inp}, {calls['weight_kib']:,.0f} KiB "
        f"of weight; one core's L2 cache here: {l2}), a call at the batches n=1 requests make: {rows}; "
        f"a {tiny_out} x {tiny_in} layer (almost no arithmetic: the call's own cost) "
        f"{calls['tiny_us_per_call']:.0f} us (medians of {calls.get('repeats', 300)} calls, one thread). "
        f"A pass of 16 one-name requests makes {calls['calls_per_pass_of_16']:.1f} such calls on average "
        f"({calls.get('passes_counted', 200)} seeded passes): "
        "one per step its longest name needs past the prefix table.",
    ]


def _versus_mlp_lines(http: dict, concurrencies: list[str]) -> list[str]:
    """The default's ratio to bare over the MLP's, per request: the median of the rounds (each
    pair of runs seconds apart), the rounds in brackets."""
    names = [name.removeprefix("default ") for name in http if name.startswith("default ")]
    if not names or "versus_mlp" not in http[f"default {names[0]}"][concurrencies[0]]:
        return []
    lines = [
        "",
        "### The default against the MLP",
        "",
        "Each request ran against the MLP and then against the default, each right after its own bare "
        "run; a cell is the median over the rounds of the default's ratio to bare over the MLP's "
        "(each round's in brackets).",
        "",
        "| request | " + " | ".join(f"c={c} default / mlp" for c in concurrencies) + " |",
        "| --- |" + " ---: |" * len(concurrencies),
    ]
    for name in names:
        cells = http[f"default {name}"]
        row = [
            f"{cells[c]['versus_mlp']:.2f} ({', '.join(f'{v:.2f}' for v in cells[c]['versus_mlp_rounds'])})"
            for c in concurrencies
        ]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def _served_over_in_process_lines(paired: dict | None) -> list[str]:
    """The served n=100 rate against the in-process one, round by round."""
    if not paired:
        return []
    lines = [
        "",
        "### Served against in process",
        "",
        "`/sample` n=100 at c=16 against the default drawing n=100 in the benchmark's process on one "
        f"thread, one right after the other; the target is the median of the rounds' ratios, "
        f"{paired['ratio']:.2f}x.",
        "",
        "| round | in process, names/s | served, names/s | served / in process |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for number, row in enumerate(paired["rounds"], 1):
        lines.append(
            f"| {number} | {row['in_process_names_per_s']:,.0f} | {row['served_names_per_s']:,.0f} | "
            f"{row['ratio']:.2f} |"
        )
    return lines


def render_markdown(results: dict) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}  ",
        f"Run: {results['date']}, {results['wall_seconds']:.0f} s in all. Load generator: wrk "
        f"(1 thread, separate process), {results['seconds']} s per run.",
        "",
    ]
    http = results["http"]["endpoints"]
    concurrencies = list(http["bare"])
    bare_ranges = ", ".join(
        f"c={c} {min(runs):.0f}-{max(runs):.0f}" for c, runs in results["http"]["bare_runs"].items()
    )
    lines += [
        "## HTTP",
        "",
        f"Each endpoint ran {results['pairs']} times, each time right after a run of the bare endpoint; a",
        "cell shows the run whose ratio to its bare run is the median (all ratios are in results.json).",
        f"The bare row is the median bare run (req/s ranges: {bare_ranges}).",
        "",
        "| endpoint | "
        + " | ".join(f"c={c} req/s | c={c} x bare | c={c} p50 / p99 ms" for c in concurrencies)
        + " |",
        "| --- |" + " ---: | ---: | ---: |" * len(concurrencies),
    ]
    for name, cells in http.items():
        row = [
            f"{cells[c]['requests_per_second']:.0f} | {cells[c]['ratio_to_bare']:.2f} | "
            f"{_ms(cells[c]['p50_ms'])} / {_ms(cells[c]['p99_ms'])}"
            for c in concurrencies
        ]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += _versus_mlp_lines(http, concurrencies)
    lines += _served_over_in_process_lines(results["http"].get("served_over_in_process"))
    plain = results["http"].get("plain_runs")
    if plain:
        lines += [
            "",
            "### Against a plain FastAPI endpoint",
            "",
            "`bench/plain.py`: the same uvicorn/uvloop/httptools stack, a small pydantic body, "
            "a fixed answer, no middleware (the bare endpoint above carries the service's). "
            "Its median req/s: "
            + ", ".join(f"c={c} {statistics.median(runs):.0f}" for c, runs in plain.items())
            + ".",
            "",
            "| endpoint | " + " | ".join(f"c={c} x plain" for c in concurrencies) + " |",
            "| --- |" + " ---: |" * len(concurrencies),
        ]
        for name, cells in http.items():
            lines.append(
                f"| {name} | " + " | ".join(f"{cells[c]['ratio_to_plain']:.2f}" for c in concurrencies) + " |"
            )
    mem = results["http"]["memory"]
    lines += [
        "",
        "## Memory (MB)",
        "",
        f"The server process's RSS: after warm-up {mem['rss_mb_after_warmup']:.0f}; after the load "
        f"{mem['rss_mb_after_load']:.0f}; after each repeat of the load: "
        f"{', '.join(f'{v:.0f}' for v in mem['rss_mb_after_each_repeat'])}.",
    ]
    if "tree_pss_mb_after_load" in mem:
        lines += [
            "",
            "With its model processes (PSS summed, shared pages once, as a container's limit counts "
            f"them): after warm-up {mem['tree_pss_mb_after_warmup']:.0f}; after the load "
            f"{mem['tree_pss_mb_after_load']:.0f}.",
        ]
    lines += [
        "",
        "## In-process sampling (names/s, median; one torch/BLAS thread)",
        "",
        f"The default model is `{results['default_model']}`. The notebook loop draws one name at a time; "
        "makemore's generate draws all names together but forwards the whole growing prefix at every "
        "step. Both are timed on at most the number of names shown.",
        "",
        "| model | n | sampler | notebook loop | makemore generate | vs notebook | vs makemore |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, rows in results["sampling"].items():
        for row in rows:
            lines.append(
                f"| {model} | {row['n']:,} | {row['sampler_names_per_s']:,.0f} | "
                f"{row['naive_names_per_s']:,.0f} | {row['makemore_names_per_s']:,.0f} "
                f"(timed on {row['naive_timed_on']}) | {row['speedup']:,.0f}x | "
                f"{row['speedup_vs_makemore']:,.1f}x |"
            )
    compute = results.get("compute")
    if compute:
        lines += [
            "",
            "## Compute limit (one core)",
            "",
            f"One thread's float32 GEMM ({' x '.join(map(str, compute['gemm_shape']))}): "
            f"{_gemm_kernels(compute)}; the limit takes the fastest. A name's work is counted over "
            "1,000 names (torch's FlopCounterMode and the dense layers' GEMMs, "
            "`bench/compute_limit.py`) with every step computed (the network's work); the limit is "
            f"the GEMM rate over it, the share the measured rate of {compute.get('names', 10_000):,} served "
            "names over the limit, the median of three rounds that each measure the GEMM rate and then "
            f"time the names {compute.get('runs', 3)} times (the rounds' shares in brackets). Served, a "
            "name's first steps are looked up in the prefix table: the work still computed is the "
            "next column.",
            "",
            "| model | MFLOP per character drawn | computed when served | characters per name "
            "| limit names/s | names/s | share |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for model, row in compute["models"].items():
            computed = row.get("computed_mflop_per_char", row["mflop_per_char"])
            lines.append(
                f"| {model} | {row['mflop_per_char']:.3f} | {computed:.3f} | {row['chars_per_name']:.2f} | "
                f"{row['limit_names_per_s']:,.0f} | {row['names_per_s']:,.0f} | {row['share_of_limit']:.0%}"
                f"{_rounds(row)} |"
            )
        lines += _small_dense_lines(compute.get("small_dense_calls"))
    t = results["training"]
    lines += [
        "",
        f"## Training ({t['steps']} steps, batch {t['batch_size']}, {t['data']})",
        "",
        f"{t['rounds']} runs of each loop, alternating; the ratio is the median of the per-round ratios "
        f"({', '.join(f'{r:.2f}' for r in t['round_ratios'])}).",
        "",
        f"| loop | steps/s (median of {t['rounds']}) | val loss after the steps |",
        "| --- | ---: | ---: |",
        f"| model.training | {t['project']['steps_per_s']:.0f} | {t['project']['val_loss']:.4f} |",
        f"| notebook (plain tensors, randn init) | {t['notebook']['steps_per_s']:.0f} | "
        f"{t['notebook']['val_loss']:.4f} |",
        f"| ratio | {t['speed_ratio']:.2f}x | |",
        "",
        "## Targets",
        "",
        "| target | met |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in results["targets"].items()]
    return "\n".join(lines) + "\n"
