"""How close in-process sampling comes to one core's compute limit (issue 19, section 2).

The limit: one thread's float32 GEMM rate in a serving-like shape, from the fastest of the kernels
at hand (torch's `mm`, which the torch-stepped families' layers use, and oneDNN's linear on a
packed weight, which the GRU's NumPy steps use: `model.families.dense`), divided by the
floating-point work a name costs the network. That work is counted, not assumed: torch's
FlopCounterMode around 1,000 names drawn through the model's own source, plus the dense layers'
GEMMs (2 x rows x in x out each), which the mode does not see, divided by the characters drawn
(each name's characters and its end). It is counted with the prefix table off, so every step is
computed; with it on, a name's first steps are lookups (`ForwardSource.tabled`), and the work
the served path still does is reported beside it. The share is the measured rate of 10,000
names, as served (table on), over the limit: the median of three rounds, each timing 10,000 names
three times right after measuring the GEMM rate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.timing import median_seconds
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.engine.sources import ForwardSource
from model.families.dense import Dense

GEMM_SHAPE = (256, 256, 768)  # rows x hidden @ hidden x 3 hidden: a GRU step of one 256-row chunk


def gemm_gflops(repeats: int = 50) -> dict[str, float]:
    """One thread's float32 GEMM rate in GFLOP/s per kernel (median of `repeats`)."""
    m, k, n = GEMM_SHAPE
    a, b = torch.randn(m, k), torch.randn(k, n)
    dense, x = Dense(b.T, torch.zeros(n)), a.numpy()
    kernels = {"torch.mm": lambda: torch.mm(a, b)}
    if dense.packed is not None:
        kernels["oneDNN linear, packed"] = lambda: dense(x)
    return {name: 2 * m * k * n / median_seconds(call, repeats) / 1e9 for name, call in kernels.items()}


@contextmanager
def counting_dense_flops() -> Iterator[list[int]]:
    """Counts the dense layers' GEMM FLOPs into the yielded one-item list while open."""
    flops = [0]
    call = Dense.__call__

    def counted(self: Dense, x: np.ndarray) -> np.ndarray:
        flops[0] += 2 * x.shape[0] * self.weight.shape[1] * self.out_features
        return call(self, x)

    with mock.patch.object(Dense, "__call__", counted):
        yield flops


def flops_per_char(model: LanguageModel, prefix_table: bool) -> tuple[float, float]:
    """FLOPs per character drawn over 1,000 names (seed 0), and the characters per name."""
    for source in model.sources:
        if isinstance(source, ForwardSource):
            source.use_prefix_table(prefix_table)
            source.table_levels()  # built now, not counted
    try:
        with FlopCounterMode(display=False) as counter, counting_dense_flops() as dense_flops:
            drawn = model.sample(1000, SamplingParams(), 0).names
    finally:
        for source in model.sources:
            if isinstance(source, ForwardSource):
                source.use_prefix_table(True)
    chars = sum(len(sample.name) + 1 for sample in drawn)
    return (counter.get_total_flops() + dense_flops[0]) / chars, chars / len(drawn)


def measure(model: LanguageModel, names: int = 10_000, rounds: int = 3, runs: int = 3) -> dict:
    """FLOPs per character (the network's, and what the served path computes), the names/s limit,
    the measured names/s and the share. Each round measures the GEMM rate (the median of 50 calls)
    and then the rate of `names` names (the median of `runs` seeded draws), so a round's share
    compares two medians seconds apart (the machine's speed drifts by more than the share moves);
    the figures are the rounds' medians."""
    params = SamplingParams()
    per_char, chars_per_name = flops_per_char(model, prefix_table=False)
    computed_per_char, _ = flops_per_char(model, prefix_table=True)
    limits, rates = [], []
    for round_ in range(rounds):
        gflops = max(gemm_gflops().values())  # the limit: the fastest kernel at hand
        limits.append(gflops * 1e9 / (per_char * chars_per_name) if per_char else float("inf"))
        seconds = []
        for run in range(runs):
            started = time.perf_counter()
            model.sample(names, params, round_ * runs + run + 1)
            seconds.append(time.perf_counter() - started)
        rates.append(names / statistics.median(seconds))
    shares = [rate / limit for rate, limit in zip(rates, limits, strict=True)]
    return {
        "mflop_per_char": per_char / 1e6,
        "computed_mflop_per_char": computed_per_char / 1e6,
        "chars_per_name": chars_per_name,
        "limit_names_per_s": statistics.median(limits),
        "names_per_s": statistics.median(rates),
        "share_of_limit": statistics.median(shares),
        "round_shares": shares,
    }
