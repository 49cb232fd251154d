"""Batch size: the reference MLP (its default init) trained at each size for the same steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

from model.experiments.common import Data, batch_generator, fresh_model
from model.families.mlp import RECIPE
from model.recipe import Recipe
from model.training.examples import evaluate
from model.training.loop import train_loop

BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
LR_SCALINGS = ("none", "sqrt", "linear")
VAL_POINTS = 20  # val evaluations per run


@dataclass
class BatchRun:
    recipe: Recipe
    val_points: list[tuple[int, float]]  # (steps done, whole-split val loss)
    val_seconds: list[float]  # training seconds at each val point, the val evaluations excluded
    train_loss: float
    val_loss: float
    wall_seconds: float

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size


def scaled_lr(lr: float, batch_size: int, scaling: str) -> float:
    """`lr` tuned at the reference batch size, kept ('none') or scaled by sqrt or the ratio of batch sizes."""
    ratio = batch_size / RECIPE.batch_size
    factors = {"none": 1.0, "sqrt": math.sqrt(ratio), "linear": ratio}
    if scaling not in factors:
        raise ValueError(f"lr scaling must be one of {', '.join(LR_SCALINGS)}, got {scaling!r}")
    return lr * factors[scaling]


def batch_recipe(batch_size: int, steps: int, scaling: str) -> Recipe:
    """The reference recipe at another batch size and length, its lr scaled by `scaling`."""
    return RECIPE.with_(
        steps=steps,
        batch_size=batch_size,
        lr=scaled_lr(RECIPE.lr, batch_size, scaling),
        lr_after=scaled_lr(RECIPE.lr_after, batch_size, scaling),
        eval_every=max(1, steps // VAL_POINTS),
    )


def run_batch_size(data: Data, batch_size: int, steps: int, scaling: str, progress: bool = True) -> BatchRun:
    recipe = batch_recipe(batch_size, steps, scaling)
    model = fresh_model(data, data.config.init)
    history = train_loop(
        model, data.train, recipe, batch_generator(), data.val, progress=progress, desc=f"batch {batch_size}"
    )
    return BatchRun(
        recipe=recipe,
        val_points=history.val_points,
        val_seconds=history.val_seconds,
        train_loss=evaluate(model, data.train),
        val_loss=evaluate(model, data.val),
        wall_seconds=history.wall_seconds,
    )


def run_batch_sizes(
    data: Data, steps: int, sizes: tuple[int, ...] = BATCH_SIZES, scaling: str = "none", progress: bool = True
) -> list[BatchRun]:
    """One fresh model per batch size, same seed, same steps and schedule shape (RECIPE's drop point)."""
    return [run_batch_size(data, size, steps, scaling, progress) for size in sizes]
