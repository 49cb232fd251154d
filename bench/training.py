"""Training speed: the training library's loop against the notebook's plain-tensor loop on the same data."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from model.families.mlp import MLP, MLPConfig
from model.recipe import Recipe
from model.training.examples import Windows, evaluate
from model.training.loop import train_loop


def notebook_loop(train: Windows, val: Windows, config: MLPConfig, recipe: Recipe) -> tuple[float, float]:
    """The seed notebook's loop: randn tensors, manual forward, p.data += -lr * p.grad.

    Runs `recipe.steps` minibatches of `recipe.batch_size` at `recipe.lr_at(step)` (the sgd drop), all
    random numbers from one generator seeded with `recipe.seed`. Returns (steps/s, val loss).
    """
    g = torch.Generator().manual_seed(recipe.seed)
    v, e, h, b = config.vocab_size, config.n_embd, config.n_hidden, config.block_size
    x, y = train
    C = torch.randn((v, e), generator=g)
    W1, b1 = torch.randn((b * e, h), generator=g), torch.randn(h, generator=g)
    W2, b2 = torch.randn((h, v), generator=g), torch.randn(v, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    start = time.perf_counter()
    for i in range(recipe.steps):
        ix = torch.randint(0, x.shape[0], (recipe.batch_size,), generator=g)
        emb = C[x[ix]]
        hidden = torch.tanh(emb.view(-1, b * e) @ W1 + b1)
        loss = F.cross_entropy(hidden @ W2 + b2, y[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = recipe.lr_at(i)
        for p in parameters:
            p.data += -lr * p.grad
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        hidden = torch.tanh(C[val.x].view(-1, b * e) @ W1 + b1)
        val_loss = F.cross_entropy(hidden @ W2 + b2, val.y).item()
    return recipe.steps / elapsed, val_loss


def project_loop(train: Windows, val: Windows, config: MLPConfig, recipe: Recipe) -> tuple[float, float]:
    """model.training's train_loop on the same data (the config's init). Returns (steps/s, val loss)."""
    model = MLP(config, generator=torch.Generator().manual_seed(recipe.seed))
    history = train_loop(model, train, recipe, torch.Generator().manual_seed(recipe.seed), progress=False)
    return recipe.steps / history.wall_seconds, evaluate(model, val)
