"""Shaping a next-character distribution for drawing: temperature, top-k, top-p, 'no empty name'."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.engine.params import SamplingParams
from model.vocab import BOUNDARY_ID


@dataclass(frozen=True)
class Shaping:
    """How raw log-probabilities become the CDFs draws are read from.

    `forbid_end_first` removes the end token from a name's first draw, so a name with an empty
    prefix is never empty (exact conditioning on length >= 1).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    forbid_end_first: bool = False

    @classmethod
    def of(cls, params: SamplingParams) -> Shaping:
        """The shaping `params` ask for; a name with no prefix is never empty."""
        return cls(
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            forbid_end_first=not params.prefix,
        )

    @property
    def plain(self) -> bool:
        """True when later steps draw from the model's own distribution."""
        return self.temperature == 1.0 and self.top_k is None and self.top_p is None

    def cdf(self, log_probs: np.ndarray, first_step: bool) -> np.ndarray:
        forbid = BOUNDARY_ID if first_step and self.forbid_end_first else None
        return cdf_from_log_probs(log_probs, self.temperature, self.top_k, forbid, self.top_p)


def cdf_from_log_probs(
    log_probs: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    forbid: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """Row-wise CDF of softmax(log_probs / temperature), keeping only the top_k likeliest entries,
    then the smallest set of likeliest entries whose probability reaches top_p, and never the
    column `forbid`. The last column is exactly 1, so a uniform draw in (0, 1] always lands on an
    entry of positive probability.

    The row maximum is subtracted BEFORE dividing by the temperature: however small the
    temperature, the likeliest entry stays at exp(0) = 1 and nothing overflows to NaN. Temperature
    0 is greedy, the limit of ever smaller temperatures: all the mass on the likeliest entry
    allowed (the first one on a tie), so every draw reads it.
    """
    scaled = log_probs.copy()
    if forbid is not None:
        scaled[:, forbid] = -np.inf
    if temperature == 0:
        return (np.arange(scaled.shape[1]) >= scaled.argmax(axis=1)[:, None]).astype(np.float64)
    if top_k is not None and top_k < scaled.shape[1]:
        kth = np.partition(scaled, -top_k, axis=1)[:, -top_k, None]
        scaled[scaled < kth] = -np.inf
    scaled -= scaled.max(axis=1, keepdims=True)
    if temperature != 1.0:
        with np.errstate(over="ignore"):  # a tiny temperature sends all but the top to -inf: weight 0
            scaled /= temperature
    weights = np.exp(scaled)
    if top_p is not None and top_p < 1.0:
        weights = _nucleus(weights, top_p)
    cdf = np.cumsum(weights, axis=1)
    return cdf / cdf[:, -1:]


def _nucleus(weights: np.ndarray, top_p: float) -> np.ndarray:
    """Zero every entry outside the smallest likeliest set holding `top_p` of each row's mass."""
    order = np.argsort(-weights, axis=1, kind="stable")
    ranked = np.take_along_axis(weights, order, axis=1)
    mass_before = np.cumsum(ranked, axis=1) - ranked  # mass of the likelier entries
    outside = mass_before >= top_p * ranked.sum(axis=1, keepdims=True)
    outside[:, 0] = False  # the likeliest entry always stays, even when top_p * mass underflows to 0
    kept = np.where(outside, 0.0, ranked)
    out = np.empty_like(weights)
    np.put_along_axis(out, order, kept, axis=1)
    return out
