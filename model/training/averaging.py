"""An exponential moving average of a model's parameters (weight averaging, `Recipe.ema`).

After step t the average is sum_i (1 - d) d^(t - i) p_i / (1 - d^t) over the parameters p_1..p_t
after each step: the running sum starts at zero and is divided by its total weight, as Adam
corrects its moments, so early in training it averages only the steps taken, never the random
initial weights. Buffers (BatchNorm's running statistics) are not averaged: the model's own are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """The parameters' moving average with decay `decay` per `update`."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.is_floating_point()]
        self.sums = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters as they are now into the average (call after each optimiser step)."""
        torch._foreach_mul_(self.sums, self.decay)
        torch._foreach_add_(self.sums, [p.detach() for p in self.params], alpha=1 - self.decay)
        self.updates += 1

    @torch.no_grad()
    def averages(self) -> list[torch.Tensor]:
        """The averaged value of every parameter (in `model.parameters()` order)."""
        if self.updates == 0:
            return [p.detach().clone() for p in self.params]
        total = 1 - self.decay**self.updates
        return [s / total for s in self.sums]

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Overwrite the model's parameters with their averages."""
        torch._foreach_copy_(self.params, self.averages())

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged parameters inside the block, its own again after it."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, own)
