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

Beside the limit, what the default's dense layer costs a call at the small batches n=1 requests
make (`small_dense_calls`): there a step's time is mostly the call's own cost and streaming a
weight larger than one core's L2 cache, not arithmetic, so the GEMM rate says little about it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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
# Rows of the small dense calls timed: a lone name's step, and a pass of 16 one-name requests'.
SMALL_ROWS = (1, 16)
PASSES_COUNTED = 200  # passes of 16 one-name requests whose dense calls are counted
TINY_LAYER = (27, 16)  # out x in: a layer with almost no arithmetic, so its call costs the call alone


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
    with _counting_dense(lambda self, x: 2 * x.shape[0] * self.weight.shape[1] * self.out_features) as flops:
        yield flops


@contextmanager
def counting_dense_calls() -> Iterator[list[int]]:
    """Counts the dense layers' calls into the yielded one-item list while open."""
    with _counting_dense(lambda self, x: 1) as calls:
        yield calls


@contextmanager
def _counting_dense(amount: Callable[[Dense, np.ndarray], int]) -> Iterator[list[int]]:
    total = [0]
    call = Dense.__call__

    def counted(self: Dense, x: np.ndarray) -> np.ndarray:
        total[0] += amount(self, x)
        return call(self, x)

    with mock.patch.object(Dense, "__call__", counted):
        yield total


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


def l2_cache_kib() -> int | None:
    """One core's L2 cache in KiB (Linux sysfs), or None where the system does not say."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * (1024 if size.endswith("M") else 1)
        except (OSError, ValueError):
            return None
    return None


def small_dense_calls(model: LanguageModel, repeats: int = 300) -> dict | None:
    """What one call of `model`'s dense layer (the one GEMM of a NumPy GRU step) costs at the small
    batches n=1 requests make (`SMALL_ROWS`), against a `TINY_LAYER` call (the call's own cost), in
    microseconds (medians of `repeats`), with the weight's size and one core's L2 cache: where the
    weight does not fit, every step streams it again. None for a model without NumPy steps."""
    source = model.sources[0]
    layers = getattr(getattr(getattr(source, "steps", None), "inner", None), "dense", None)
    if not layers:
        return None
    dense = layers[0]
    rng = np.random.default_rng(0)
    tiny_weight = torch.from_numpy(rng.standard_normal(TINY_LAYER, dtype=np.float32))
    tiny = Dense(tiny_weight, torch.zeros(TINY_LAYER[0]))
    tiny_x = rng.standard_normal((1, TINY_LAYER[1]), dtype=np.float32)
    costs = {}
    for rows in SMALL_ROWS:
        x = rng.standard_normal((rows, dense.weight.shape[1]), dtype=np.float32)
        costs[str(rows)] = median_seconds(lambda x=x: dense(x), repeats) * 1e6
    with counting_dense_calls() as calls:  # passes of 16 one-name requests, seeds 0-3,199
        for first in range(0, PASSES_COUNTED * 16, 16):
            model.sample_batch([(1, seed) for seed in range(first, first + 16)], SamplingParams())
    return {
        "calls_per_pass_of_16": calls[0] / PASSES_COUNTED,
        "passes_counted": PASSES_COUNTED,
        "repeats": repeats,
        "weight": list(dense.weight.shape),
        "weight_kib": dense.weight.nelement() * dense.weight.element_size() / 1024,
        "l2_kib": l2_cache_kib(),
        "us_per_call": costs,
        "tiny_layer": list(TINY_LAYER),
        "tiny_us_per_call": median_seconds(lambda: tiny(tiny_x), repeats) * 1e6,
    }
