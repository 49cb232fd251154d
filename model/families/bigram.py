"""The bigram: a table of next-character log-probabilities indexed by the previous character.

The floor every other family must beat. It is trained by counting, not by gradient descent:
`fit_counts` turns transition counts plus `smoothing` into log-probabilities (Laplace smoothing
with the default 1.0, as in makemore part 1, `makemore_part1_bigrams.ipynb`: 2.4765 nats on all
names). The table is a parameter so it lives in the checkpoint like any family's weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.families.base import FamilyConfig, WindowModel
from model.families.registry import Family, register
from model.recipe import Recipe


@dataclass(frozen=True)
class BigramConfig(FamilyConfig):
    smoothing: float = 1.0  # pseudo-count added to every transition (0: raw maximum likelihood)

    @property
    def block_size(self) -> int:
        """A bigram reads exactly one previous id; not a field, so it cannot be set otherwise."""
        return 1


# Counting needs one pass over the data: no optimiser, no schedule.
RECIPE = Recipe(examples="counts", steps=1, eval_every=1)


class Bigram(WindowModel):
    kind = "bigram"

    def __init__(self, config: BigramConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        # uniform before fitting; no randomness, so `generator` is accepted for the contract only
        v = config.vocab_size
        self.log_probs = nn.Parameter(torch.full((v, v), -math.log(v)))

    def window_logits(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.log_probs[contexts[:, -1]]

    def sequence_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.log_probs[ids]  # the window is the id itself: no padding or unfolding needed

    @torch.no_grad()
    def fit_counts(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """Set the table from ids[B, T + 1] ('.' + name + '.', padded after the end) and mask[B, T]
        (True where ids[:, t] -> ids[:, t + 1] is a real transition)."""
        v = self.config.vocab_size
        pairs = (ids[:, :-1] * v + ids[:, 1:])[mask.bool()]
        # float64 so that the probabilities are exact ratios of integer counts to ~1e-16
        counts = torch.bincount(pairs.flatten().cpu(), minlength=v * v).view(v, v).double()
        counts += self.config.smoothing
        totals = counts.sum(1, keepdim=True)
        # a row never seen (possible only without smoothing) stays uniform instead of 0/0
        probs = torch.where(totals > 0, counts / totals.clamp_min(1e-300), 1.0 / v)
        self.log_probs.copy_(probs.log().to(self.log_probs))


FAMILY = register(
    Family("bigram", BigramConfig, Bigram, RECIPE, "bigram counts with additive smoothing: P(next | prev)")
)
