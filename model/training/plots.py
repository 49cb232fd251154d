"""Loss-curve plots (log10 loss per step, as the seed notebook plotted), written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from model.atomic import write_atomically

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from model.families import CharModel
    from model.recipe import Recipe
    from model.training.loop import History


def save_figure(fig: Figure, path: Path) -> None:
    """Save `fig` as PNG via a temporary file, so an interrupted run leaves no broken image."""
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_loss_curve(history: History, recipe: Recipe, path: Path, title: str = "") -> None:
    """Per-step minibatch log10 loss, its 1,000-step mean, val loss points and the lr drop."""
    losses = history.step_losses.log10()
    steps = len(losses)
    window = max(1, min(1000, steps // 50))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(losses.numpy(), lw=0.3, alpha=0.35, color="tab:blue", label="minibatch")
    usable = steps - steps % window
    if usable:
        means = history.step_losses[:usable].view(-1, window).mean(1).log10()
        ax.plot(
            [window * (i + 0.5) for i in range(len(means))],
            means.numpy(),
            color="tab:blue",
            label=f"mean of {window} steps",
        )
    if history.val_points:
        vs, vl = zip(*history.val_points, strict=True)
        ax.plot(vs, [math.log10(v) for v in vl], "o-", color="tab:orange", ms=3, label="val (full split)")
    if recipe.optimizer == "sgd" and 0 < recipe.decay_step < steps:
        label = f"lr {recipe.lr:g} -> {recipe.lr_after:g}"
        ax.axvline(recipe.decay_step, color="grey", ls="--", lw=0.8, label=label)
    if history.best_step is not None:
        ax.axvline(history.best_step, color="tab:green", ls=":", lw=0.8, label="best val (kept)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss (nats/char)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_next_char_map(model: CharModel, alphabet: str, path: Path, title: str = "") -> None:
    """P(next | previous character) for every character (row) and next character (column): the
    picture of a counted model, which has no loss curve."""
    with torch.inference_mode():
        rows = torch.tensor([[0, i] for i in range(len(alphabet))])  # '.' + each character
        probs = torch.softmax(model.sequence_logits(rows)[:, -1].double(), dim=-1).numpy()
    fig, ax = plt.subplots(figsize=(8, 7.5))
    image = ax.imshow(probs, cmap="Blues")
    labels = ["start/end" if c == "." else c for c in alphabet]
    ax.set_xticks(range(len(alphabet)), labels=list(alphabet), fontsize=7)
    ax.set_yticks(range(len(alphabet)), labels=labels, fontsize=7)
    ax.set_xlabel("next character ('.' = end of name)")
    ax.set_ylabel("previous character")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="probability")
    save_figure(fig, path)
