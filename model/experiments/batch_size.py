"""Batch size: the reference MLP (its default 'scaled' init) trained at each size for the same steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

from model.experiments.common import Data, batch_generator, fresh_model
from model.train import Schedule, evaluate, train_loop

BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
REFERENCE_BATCH = 128
LR_SCALINGS = ("none", "sqrt", "linear")


@dataclass
class BatchRun:
    schedule: Schedule
    val_points: list[tuple[int, float]]  # (steps done, whole-split val loss)
    val_seconds: list[float]  # training seconds at each val point, the val evaluations excluded
    train_loss: float
    val_loss: float
    wall_seconds: float

    @property
    def batch_size(self) -> int:
        return self.schedule.batch_size


def scaled_lr(lr: float, batch_size: int, scaling: str) -> float:
    """`lr` tuned at batch 128, kept ('none') or scaled by sqrt or the ratio of batch sizes."""
    ratio = batch_size / REFERENCE_BATCH
    factors = {"none": 1.0, "sqrt": math.sqrt(ratio), "linear": ratio}
    if scaling not in factors:
        raise ValueError(f"lr scaling must be one of {', '.join(LR_SCALINGS)}, got {scaling!r}")
    return lr * factors[scaling]


def run_batch_size(data: Data, batch_size: int, steps: int, scaling: str, progress: bool = True) -> BatchRun:
    schedule = Schedule(
        steps=steps,
        batch_size=batch_size,
        lr=scaled_lr(0.1, batch_size, scaling),
        lr_after=scaled_lr(0.01, batch_size, scaling),
    )
    model = fresh_model(data, "scaled")
    history = train_loop(
        model,
        *data.train,
        schedule,
        batch_generator(),
        *data.val,
        eval_every=max(1, steps // 20),
        progress=progress,
        desc=f"batch {batch_size}",
    )
    return BatchRun(
        schedule=schedule,
        val_points=history.val_points,
        val_seconds=history.val_seconds,
        train_loss=evaluate(model, *data.train),
        val_loss=evaluate(model, *data.val),
        wall_seconds=history.wall_seconds,
    )


def run_batch_sizes(
    data: Data, steps: int, sizes: tuple[int, ...] = BATCH_SIZES, scaling: str = "none", progress: bool = True
) -> list[BatchRun]:
    """One fresh model per batch size, same seed, same steps and schedule shape (drop at halfway)."""
    return [run_batch_size(data, size, steps, scaling, progress) for size in sizes]
