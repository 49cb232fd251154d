"""Small statistics the verdict rules use: rank correlation and windowed spreads of a loss curve."""

from __future__ import annotations

import math

import numpy as np
import torch


def ranks(values: list[float]) -> list[float]:
    """1-based ranks of `values`, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            out[i] = (start + end) / 2 + 1
        start = end + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant or there are fewer than 3 pairs."""
    if len(a) != len(b) or len(a) < 3:
        return math.nan
    ra, rb = np.array(ranks(a)), np.array(ranks(b))
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


SPREAD_QUANTILES = (0.05, 0.95)  # the band whose width `spread` measures


def percentile_range(
    losses: torch.Tensor, low: float = SPREAD_QUANTILES[0], high: float = SPREAD_QUANTILES[1]
) -> tuple[float, float]:
    """(low, high) quantiles of a window of minibatch losses."""
    lo, hi = torch.quantile(losses.to(torch.float64), torch.tensor([low, high], dtype=torch.float64)).tolist()
    return lo, hi


def spread(losses: torch.Tensor) -> float:
    """Width of the SPREAD_QUANTILES band (5th-95th percentile): how far the minibatch loss swings."""
    lo, hi = percentile_range(losses)
    return hi - lo


def mean_val(points: list[tuple[int, float]], after: int, upto: int) -> float:
    """Mean of the val losses measured at steps in (after, upto]; NaN when there are none."""
    values = [v for s, v in points if after < s <= upto]
    return sum(values) / len(values) if values else math.nan


def unigram_entropy(targets: torch.Tensor) -> float:
    """Entropy (nats) of the next-character frequencies: the best loss of a model that ignores context."""
    p = torch.bincount(targets).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())
