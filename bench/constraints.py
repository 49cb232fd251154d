"""Constrained sampling throughput and fidelity: `python -m bench.constraints` (about 2 minutes).

For the default GRU and the MLP: 1,000 names ending in "-son" and 1,000 names of 5-7 letters,
in names/s beside unconstrained sampling (the median of 3 warm runs, one thread; the first,
cold run also builds the backward pass or the SMC twist, reported apart), with the method,
p_constraint and draws. Fidelity: 3,000 constrained names against 3,000 names drawn by rejection
(exact by construction), a two-sample chi-square on (length, first letter) cells; SMC names come
32 to a particle group, so its statistic is divided by the measured design effect as in
tests/model/test_constrained_smc.py. Writes a markdown table to stdout.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

import numpy as np
from threadpoolctl import threadpool_limits

from model.engine.constraints.spec import Constraints
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from tests.conftest import ROOT
from tests.model.constraint_stats import chi2_sf

CASES = [("ends -son", Constraints(ends_with="son")), ("5-7 letters", Constraints(length=(5, 7)))]
N = 1000
CHECK = 3008
GROUP = 32


def names_per_second(work, n: int, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def cell(name: str) -> str:
    return f"{len(name)}{name[0]}"


def two_sample_p(a: list[str], b: list[str], group: int) -> float:
    """Homogeneity of the cells of `a` and `b` (equal sizes); cells with an expected count under 5
    pooled; the statistic divided by the design effect of `a`'s groups of `group` names."""
    ca, cb = Counter(map(cell, a)), Counter(map(cell, b))
    keys = sorted(set(ca) | set(cb))
    oa, ob = np.array([ca[k] for k in keys], float), np.array([cb[k] for k in keys], float)
    expected = (oa + ob) / 2
    big = expected >= 5
    oa, ob = np.append(oa[big], oa[~big].sum()), np.append(ob[big], ob[~big].sum())
    e = (oa + ob) / 2
    keep = e > 0
    statistic = float((((oa - e) ** 2 + (ob - e) ** 2)[keep] / e[keep]).sum())
    return chi2_sf(
        statistic / design_effect(a, group, [k for k, b_ in zip(keys, big, strict=True) if b_]),
        int(keep.sum()) - 1,
    )


def design_effect(names: list[str], group: int, cells: list[str]) -> float:
    if group <= 1:
        return 1.0
    groups = len(names) // group
    counts = np.zeros((groups, len(cells)))
    index = {c: i for i, c in enumerate(cells)}
    for g in range(groups):
        for name in names[g * group : (g + 1) * group]:
            if cell(name) in index:
                counts[g, index[cell(name)]] += 1
    p = counts.sum(axis=0) / (groups * group)
    ok = p > 0
    ratio = counts[:, ok].var(axis=0, ddof=1) / (group * p[ok] * (1 - p[ok]))
    return max(1.0, float(ratio.mean()))


def measure(model_name: str) -> list[tuple]:
    """The rows of one model: unconstrained, then each case."""
    model = LanguageModel.from_checkpoint(ROOT / "weights" / f"{model_name}.safetensors", device="cpu")
    model.check_batching()  # padded, and a GRU's prefix table used, as the server does
    seeds = iter(range(1, 10**6))
    plain = names_per_second(lambda: model.sample(N, SamplingParams(), next(seeds)), N)
    rows = [(model_name, "none", "-", 1.0, N, plain, None, None, None)]
    for label, constraints in CASES:
        start = time.perf_counter()
        model.sample(N, SamplingParams(), 0, constraints=constraints)
        cold = time.perf_counter() - start
        results = []

        def run(constraints: Constraints = constraints, results: list = results) -> None:
            results.append(model.sample(N, SamplingParams(), next(seeds), constraints=constraints))

        warm = names_per_second(run, N)
        report = results[-1].constraint
        checked = model.sample(CHECK, SamplingParams(), 7, constraints=constraints, budget=10**7)
        exact = model.sample(
            CHECK, SamplingParams(), 8, constraints=constraints, budget=10**8, method="rejection"
        )
        group = GROUP if checked.constraint.method == "smc" else 1
        names = [s.name for s in checked.names]
        names = names[len(names) % group :] if group > 1 else names
        p = two_sample_p(names, [s.name for s in exact.names][: len(names)], group)
        rows.append(
            (model_name, label, report.method, report.p_constraint, report.draws, warm, cold, p, report.ess)
        )
    return rows


HEADER = (
    "| model | constraint | method | p_constraint | draws (1,000 names) | names/s | ratio to unconstrained "
    "| cold first call (s) | chi-square p vs rejection | ESS |\n"
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def main() -> None:
    with threadpool_limits(1):
        rows = [row for name in ("names-gru", "names-mlp") for row in measure(name)]
    print(HEADER)
    plain = {r[0]: r[5] for r in rows if r[1] == "none"}
    for model_name, label, method, p, draws, rate, cold, chi, ess in rows:
        cells = [
            model_name,
            label,
            method,
            f"{p:.4g}",
            f"{draws:,}",
            f"{rate:,.0f}",
            f"{rate / plain[model_name]:.2f}",
            "-" if cold is None else f"{cold:.2f}",
            "-" if chi is None else f"{chi:.3f}",
            "-" if ess is None else f"{ess:.0f} / 1024",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
