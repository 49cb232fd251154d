"""The learning-rate finder: one step at each lr = 10^x, x rising linearly, on the training split only."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from model.experiments.common import Data, batch_generator, fresh_model
from model.families.mlp import RECIPE
from model.recipe import Recipe
from model.training.loop import train_loop

SMOOTHING = 51  # steps in the centred moving average the suggestions are read from
FINDER_INITS = ("randn", "scaled")  # the notebook's init, then the project's default


@dataclass(frozen=True)
class LogSweep(Recipe):
    """lr = 10^x with x going linearly from `min_exp` at the first step to `max_exp` at the last.

    Everything else (optimiser, batch size, seeds) is the recipe it was made from (`LogSweep.of`).
    """

    min_exp: float = -3.0
    max_exp: float = 0.0

    @classmethod
    def of(cls, recipe: Recipe, steps: int) -> LogSweep:
        """`recipe` with its schedule replaced by the sweep over `steps` steps."""
        return cls(**{f.name: getattr(recipe, f.name) for f in fields(Recipe)} | {"steps": steps})

    def exponent_at(self, step: int) -> float:
        return self.min_exp + (self.max_exp - self.min_exp) * step / max(1, self.steps - 1)

    def lr_at(self, step: int) -> float:
        return 10 ** self.exponent_at(step)


@dataclass
class FinderResult:
    init: str
    exponents: np.ndarray  # log10 lr of every step
    losses: np.ndarray  # minibatch loss of every step (taken before that step's update)
    smoothed: np.ndarray  # centred moving average of `losses`, NaN from the first non-finite loss on
    lr_min: float  # lr where the smoothed loss is lowest
    lr_steep: float  # lr where the smoothed loss falls fastest per decade, before that minimum
    wall_seconds: float
    sweep: LogSweep


def smooth(losses: np.ndarray, window: int = SMOOTHING) -> np.ndarray:
    """Centred moving average (the window shrinks at the ends); NaN from the first non-finite value on."""
    finite = np.isfinite(losses)
    usable = len(losses) if finite.all() else int(np.argmin(finite))
    out = np.full(len(losses), np.nan)
    if usable == 0:
        return out
    sums = np.concatenate([[0.0], np.cumsum(losses[:usable])])
    half = window // 2
    idx = np.arange(usable)
    low, high = np.maximum(idx - half, 0), np.minimum(idx + half + 1, usable)
    out[:usable] = (sums[high] - sums[low]) / (high - low)
    return out


def suggestions(exponents: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(lr at the smoothed minimum, lr of steepest descent per decade before the minimum)."""
    if not np.isfinite(smoothed).any():
        return math.nan, math.nan
    best = int(np.nanargmin(smoothed))
    if best < 2:
        return 10 ** exponents[best], 10 ** exponents[best]
    slope = np.gradient(smoothed[: best + 1], exponents[: best + 1])
    return float(10 ** exponents[best]), float(10 ** exponents[int(np.argmin(slope))])


def run_lr_finder(data: Data, init: str, steps: int = 1000, progress: bool = True) -> FinderResult:
    """Sweep the lr over `steps` minibatches of the reference batch size on a fresh model (`LogSweep` of
    RECIPE); val and test are not used."""
    sweep = LogSweep.of(RECIPE, steps)
    model = fresh_model(data, init)
    history = train_loop(model, data.train, sweep, batch_generator(), progress=progress, desc=f"lr {init}")
    exponents = np.array([sweep.exponent_at(s) for s in range(steps)])
    losses = history.step_losses.to(torch.float64).numpy()
    smoothed = smooth(losses)
    lr_min, lr_steep = suggestions(exponents, smoothed)
    return FinderResult(init, exponents, losses, smoothed, lr_min, lr_steep, history.wall_seconds, sweep)
