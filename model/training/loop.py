"""The training loop: minibatches, the recipe's optimiser and schedule, periodic val, progress.

SGD steps the parameters in place with one foreach call (the seed's reference run, reproduced
exactly); AdamW uses torch's implementation. With `recipe.ema` the parameters' moving average
(`model.training.averaging`) is updated after every step, and val, `keep_best` and the weights the
model ends with are the averaged ones. With `recipe.keep_best` the weights of the best val
evaluation are restored at the end.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from model.families import CharModel
from model.recipe import Recipe
from model.training.averaging import WeightAverage
from model.training.examples import Examples, evaluate


@dataclass
class History:
    step_losses: torch.Tensor  # minibatch loss at every step
    val_points: list[tuple[int, float]] = field(default_factory=list)
    wall_seconds: float = 0.0
    val_seconds: list[float] = field(default_factory=list)  # training seconds (evals excluded) per val point
    best_step: int | None = None  # the step whose weights were kept (keep_best)


class _Optimiser:
    """One parameter update at the recipe's learning rate."""

    def __init__(self, model: CharModel, recipe: Recipe) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.recipe = recipe
        self.adamw = None
        if recipe.optimizer == "adamw":
            self.adamw = torch.optim.AdamW(
                self.params, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay
            )

    def step(self, loss: torch.Tensor, step: int) -> None:
        lr = self.recipe.lr_at(step)
        for p in self.params:
            p.grad = None
        loss.backward()
        if self.adamw is None:
            with torch.no_grad():
                torch._foreach_add_(self.params, [p.grad for p in self.params], alpha=-lr)
            return
        for group in self.adamw.param_groups:
            group["lr"] = lr
        self.adamw.step()


def train_loop(
    model: CharModel,
    train: Examples,
    recipe: Recipe,
    generator: torch.Generator,
    val: Examples | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train `model` in place by `recipe`; record every step's loss and periodic val loss."""
    device = next(model.parameters()).device
    losses: list[torch.Tensor] = []  # this block's detached scalars: no sync, no copy per step
    blocks: list[torch.Tensor] = []  # every 1,000 steps the block is stacked into one tensor
    history = History(torch.empty(0))
    optimiser = _Optimiser(model, recipe)
    average = WeightAverage(model, recipe.ema) if recipe.ema > 0 else None
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    started = time.perf_counter()
    eval_seconds = 0.0
    bar = tqdm(total=recipe.steps, desc=desc, disable=not progress, unit="step", mininterval=1.0)
    model.train()
    for step in range(recipe.steps):
        ix = torch.randint(0, train.rows, (recipe.batch_size,), generator=generator, device=device)
        loss = train.batch_loss(model, ix)
        optimiser.step(loss, step)
        if average is not None:
            average.update()
        losses.append(loss.detach())
        done = step + 1
        if len(losses) == 1000 or done == recipe.steps:
            blocks.append(torch.stack(losses))
            losses = []
        if val is not None and (done % recipe.eval_every == 0 or done == recipe.steps):
            eval_started = time.perf_counter()
            history.val_seconds.append(eval_started - started - eval_seconds)
            with average.applied() if average is not None else nullcontext():
                val_loss = evaluate(model, val)
                history.val_points.append((done, val_loss))
                if recipe.keep_best and (best is None or val_loss < best[0]):
                    best = (val_loss, copy.deepcopy(model.state_dict()))
                    history.best_step = done
            eval_seconds += time.perf_counter() - eval_started
        if progress and (done % 100 == 0 or done == recipe.steps):
            postfix = {"loss": f"{torch.stack(losses or [loss.detach()]).mean():.4f}"}
            if history.val_points:
                postfix["val"] = f"{history.val_points[-1][1]:.4f}"
            bar.set_postfix(postfix, refresh=False)
        bar.update(1)
    bar.close()
    if best is not None:
        model.load_state_dict(best[1])
    elif average is not None:
        average.copy_to_model()
    model.eval()
    history.step_losses = torch.cat(blocks).cpu() if blocks else torch.empty(0)
    history.wall_seconds = time.perf_counter() - started
    return history
