"""How a model is trained, as plain data: each family's reference preset names one of these.

The training library (`model.training`) carries a recipe out; the CLI's flags default to it, the
experiments and the benchmark read it, so a reference number is stated in exactly one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

Examples = Literal["windows", "sequences", "counts"]


@dataclass(frozen=True)
class Recipe:
    """Optimiser, schedule and batches.

    `sgd` steps the learning rate from `lr` to `lr_after` at step `decay_at * steps` (the seed's
    recipe); `adamw` decays it from `lr` to `lr_after` along a cosine over all steps.
    `examples` says what a batch holds: context windows, whole names ('.' + name -> name + '.'),
    or nothing at all (`counts`: the bigram is counted, not optimised).
    `ema` > 0 keeps an exponential moving average of the parameters (decay `ema` per step), which
    val, `keep_best` and the saved weights use. `distill_weight` A > 0 (with teachers, given to the
    training run) trains on (1 - A) CE(targets) + A soft cross-entropy to the teachers' probabilities.
    """

    examples: Examples = "windows"
    optimizer: Literal["sgd", "adamw"] = "sgd"
    steps: int = 200_000
    batch_size: int = 128
    lr: float = 0.1
    lr_after: float = 0.01
    decay_at: float = 0.5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    eval_every: int = 10_000
    keep_best: bool = True  # keep the weights of the best val evaluation, not the last step's
    ema: float = 0.0  # decay of the parameters' moving average per step; 0: none
    distill_weight: float = 0.0  # share A of the loss that is the teachers' soft targets; 0: none
    seed: int = 1337
    split_seed: int = 42
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)

    @property
    def decay_step(self) -> int:
        """The step from which `sgd` uses `lr_after`."""
        return int(self.steps * self.decay_at)

    def lr_at(self, step: int) -> float:
        """`sgd`: `lr` until the decay step, then `lr_after`; `adamw`: cosine from `lr` to `lr_after`."""
        if self.optimizer == "sgd":
            return self.lr if step < self.decay_step else self.lr_after
        progress = step / max(1, self.steps - 1)
        return self.lr_after + 0.5 * (self.lr - self.lr_after) * (1 + math.cos(math.pi * progress))

    def check(self) -> None:
        """Raise ValueError naming the first field out of range."""
        for name in ("steps", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.decay_at <= 1:
            raise ValueError(f"decay_at must be in [0, 1], got {self.decay_at}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1) > 1e-9:
            raise ValueError(f"split must be three non-negative fractions summing to 1, got {self.split}")

    def with_(self, **changes: object) -> Recipe:
        return replace(self, **changes)
