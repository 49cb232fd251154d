"""The report's PNGs: log10 loss curves (as the notebook plotted), histograms, lr finder, batch size."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from model.experiments.batch_size import BatchRun
from model.experiments.claims import DROP_WINDOW
from model.experiments.inits import HISTOGRAM_BINS, PROBE_ROWS, SATURATED, InitRun
from model.experiments.lr_finder import SMOOTHING, FinderResult
from model.experiments.report import drop_point, lr_schedule
from model.families.mlp import RECIPE
from model.training.plots import save_figure


def _block_means(losses: torch.Tensor, blocks: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(centre step, mean loss) of `blocks` equal runs of steps."""
    window = max(1, len(losses) // blocks)
    usable = len(losses) - len(losses) % window
    means = losses[:usable].view(-1, window).mean(1).numpy()
    return window * (np.arange(len(means)) + 0.5), means


def _draw_run(ax: plt.Axes, run: InitRun) -> None:
    ax.plot(run.step_losses.log10().numpy(), lw=0.3, alpha=0.3, color="tab:blue")
    steps, means = _block_means(run.step_losses)
    ax.plot(steps, np.log10(means), color="tab:blue", lw=1.2, label="minibatch (block mean)")
    if run.val_points:
        vs, vl = zip(*run.val_points, strict=True)
        ax.plot(vs, np.log10(vl), ".", color="tab:orange", ms=3, label="val (whole split)")
    if run.recipe.lr_after != run.recipe.lr:
        label = f"lr {run.recipe.lr:g} -> {run.recipe.lr_after:g}"
        ax.axvline(run.decay_step, color="grey", ls="--", lw=0.8, label=label)


def plot_init_curves(runs: list[InitRun], path: Path) -> None:
    """One panel per run, shared log10 loss axis."""
    cols = 4
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 2.9 * rows), sharex=True, sharey=True, squeeze=False
    )
    for ax, run in zip(axes.flat, runs, strict=False):
        _draw_run(ax, run)
        ax.set_title(f"{run.spec.label}: val {run.val_loss:.3f}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("log10 loss")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle("Minibatch loss per step by initialisation (same seed, data and schedule)", fontsize=11)
    save_figure(fig, path)


def plot_init_overlay(runs: list[InitRun], path: Path) -> None:
    """Block-mean log10 loss of every run on one axis."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, run in enumerate(runs):
        steps, means = _block_means(run.step_losses)
        style = {"color": plt.cm.tab10(i % 10), "ls": "-" if i < 10 else "--"}
        ax.plot(steps, np.log10(means), label=run.spec.label, lw=1.3, **style)
    ax.axvline(runs[0].decay_step, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 loss (mean of {max(1, len(runs[0].step_losses) // 100)} steps)")
    ax.set_title("Loss by initialisation; dashed line: lr drop", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_activation_histograms(runs: list[InitRun], path: Path) -> None:
    """Histogram of every hidden tanh output at initialisation, one panel per run."""
    cols = 4
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), sharex=True, squeeze=False)
    edges = np.linspace(-1, 1, HISTOGRAM_BINS + 1)
    for ax, run in zip(axes.flat, runs, strict=False):
        counts = run.initial.histogram.numpy()
        ax.bar(edges[:-1], counts / counts.sum(), width=np.diff(edges), align="edge", color="tab:purple")
        ax.set_title(f"{run.spec.label}: {run.initial.saturation:.0%} |h| > {SATURATED}", fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("tanh output h at init")
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction")
    fig.suptitle(
        f"Hidden tanh outputs at init ({PROBE_ROWS:,} sampled training windows x all units)", fontsize=11
    )
    save_figure(fig, path)


def plot_lr_drop(main: InitRun, control: InitRun, path: Path) -> None:
    """The minibatch loss around the drop step, with and without the lr drop."""
    d = main.decay_step
    w = max(1, d // DROP_WINDOW)
    lo, hi = max(0, d - 2 * w), min(len(main.step_losses), d + 2 * w)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, run, name in (
        (axes[0], main, f"lr {main.recipe.lr:g} -> {main.recipe.lr_after:g} at step"),
        (axes[1], control, f"{lr_schedule(control.recipe)}; step"),
    ):
        steps = np.arange(lo, hi)
        ax.plot(steps, run.step_losses[lo:hi].numpy(), lw=0.3, color="tab:blue", alpha=0.6, label="minibatch")
        val = [(s, v) for s, v in run.val_points if lo < s <= hi]
        if val:
            ax.plot(*zip(*val, strict=True), "o-", color="tab:orange", ms=3, label="val (whole split)")
        ax.axvline(d, color="grey", ls="--", lw=0.8)
        ax.axvspan(d - w, d + w, color="grey", alpha=0.08, label="windows compared")
        ax.set_title(f"{run.spec.label}: {name} {d}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats/char)")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def plot_lr_finder(finders: list[FinderResult], path: Path) -> None:
    """Sweep loss against log10 lr, raw and smoothed, with the minimum and steepest-descent picks."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, f in enumerate(finders):
        color = plt.cm.tab10(i)
        ax.plot(f.exponents, np.log10(f.losses), lw=0.4, alpha=0.35, color=color)
        ax.plot(
            f.exponents, np.log10(f.smoothed), lw=1.5, color=color, label=f"{f.init} ({SMOOTHING}-step mean)"
        )
        for lr, marker, what in ((f.lr_min, "o", "minimum"), (f.lr_steep, "v", "steepest")):
            if math.isfinite(lr):
                y = np.interp(math.log10(lr), f.exponents, np.log10(f.smoothed))
                ax.plot(math.log10(lr), y, marker, color=color, ms=8, label=f"{f.init} {what}: lr {lr:.3g}")
    ax.axvline(math.log10(RECIPE.lr), color="grey", ls="--", lw=0.8, label=f"lr {RECIPE.lr:g} (reference)")
    ax.set_xlabel("log10 lr (one step per lr, training split only)")
    ax.set_ylabel("log10 minibatch loss")
    sweep = finders[0].sweep
    ax.set_title(
        f"Learning-rate finder: lr = 10^x, x from {sweep.min_exp:g} to {sweep.max_exp:g}", fontsize=10
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_batch_sizes(runs: list[BatchRun], path: Path) -> None:
    """Whole-split val loss against steps and against training seconds, one line per batch size."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for i, run in enumerate(runs):
        steps, val = zip(*run.val_points, strict=True)
        label = f"batch {run.batch_size} (lr {run.recipe.lr:g})"
        axes[0].plot(
            steps, np.log10(val), "o-", ms=2.5, color=plt.cm.viridis(i / max(1, len(runs) - 1)), label=label
        )
        axes[1].plot(
            run.val_seconds, np.log10(val), "o-", ms=2.5, color=plt.cm.viridis(i / max(1, len(runs) - 1))
        )
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training seconds (val evaluations excluded)")
    axes[0].set_ylabel("log10 val loss (whole split)")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Batch size: same steps and schedule shape (lr drop at {drop_point(runs[0].recipe)})", fontsize=11
    )
    save_figure(fig, path)


def draw_all(
    out_dir: Path, runs: list[InitRun], finders: list[FinderResult], batches: list[BatchRun]
) -> list[str]:
    """Write every figure the results allow into `out_dir`; return the file names written."""
    jobs = []
    schemes = [r for r in runs if r.spec.lr_after != r.recipe.lr]  # lr-drop runs; drops the no-drop control
    by_label = {r.spec.label: r for r in runs}
    if runs:
        jobs += [
            ("init_loss_curves.png", lambda p: plot_init_curves(runs, p)),
            ("init_loss_overlay.png", lambda p: plot_init_overlay(schemes, p)),
            ("init_activations.png", lambda p: plot_activation_histograms(schemes, p)),
        ]
    if "uniform:0,1" in by_label and "uniform:0,1 (no lr drop)" in by_label:
        main, control = by_label["uniform:0,1"], by_label["uniform:0,1 (no lr drop)"]
        jobs.append(("lr_drop.png", lambda p: plot_lr_drop(main, control, p)))
    if finders:
        jobs.append(("lr_finder.png", lambda p: plot_lr_finder(finders, p)))
    if batches:
        jobs.append(("batch_size.png", lambda p: plot_batch_sizes(batches, p)))
    for name, draw in jobs:
        draw(out_dir / name)
    return [name for name, _ in jobs]
