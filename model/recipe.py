"""How a model is trained, as plain data: each family's reference preset names one of these.

The training library (`model.training`) carries a recipe out; the CLI's flags default to it, the
experiments and the benchmark read it, so a reference number is stated in exactly one place.
"""

from __future__ import annotations

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
    seed: int = 1337
    split_seed: int = 42
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)

    @property
    def decay_step(self) -> int:
        """The step from which `sgd` uses `lr_after`."""
        return int(self.steps * self.decay_at)

    def with_(self, **changes: object) -> Recipe:
        return replace(self, **changes)
