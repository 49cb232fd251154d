"""How close in-process sampling comes to one core's compute limit (issue 19, section 2).

The limit: one thread's float32 GEMM rate (torch, the GEMM every served forward step uses, in a
serving-like shape) divided by the floating-point work a served name costs. That work is counted,
not assumed: torch's FlopCounterMode around 1,000 names drawn through the model's own source (the
GRU's NumPy steps call torch's GEMM, so they are counted too), divided by the characters drawn
(each name's characters and its end). The share is the measured rate of 10,000 names over it.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams

GEMM_SHAPE = (256, 256, 768)  # rows x hidden @ hidden x 3 hidden: a GRU step of one 256-row chunk


def gemm_gflops(repeats: int = 50) -> float:
    """One thread's float32 GEMM rate in GFLOP/s (median of `repeats`)."""
    m, k, n = GEMM_SHAPE
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - started)
    return 2 * m * k * n / statistics.median(times) / 1e9


def measure(model: LanguageModel, gflops: float, names: int = 10_000) -> dict:
    """FLOPs per character, the names/s limit at `gflops`, the measured names/s and the share."""
    params = SamplingParams()
    with FlopCounterMode(display=False) as counter:
        drawn = model.sample(1000, params, 0).names
    chars = sum(len(sample.name) + 1 for sample in drawn)
    flops_per_char = counter.get_total_flops() / chars
    limit = gflops * 1e9 / (flops_per_char * chars / len(drawn)) if flops_per_char else float("inf")
    times = []
    for seed in range(3):
        started = time.perf_counter()
        model.sample(names, params, seed + 1)
        times.append(time.perf_counter() - started)
    rate = names / statistics.median(times)
    return {
        "mflop_per_char": flops_per_char / 1e6,
        "chars_per_name": chars / len(drawn),
        "limit_names_per_s": limit,
        "names_per_s": rate,
        "share_of_limit": rate / limit,
    }
