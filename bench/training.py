"""Training speed: model.train's loop against the notebook's plain-tensor loop, same data and batch."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from model.families.mlp import MLP, MLPConfig
from model.train import Schedule, evaluate, train_loop


def notebook_loop(
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: MLPConfig,
    steps: int,
    batch_size: int,
    seed: int,
) -> tuple[float, float]:
    """The seed notebook's loop: randn tensors, manual forward, p.data += -lr * p.grad.

    Returns (steps/s, val loss after `steps`).
    """
    g = torch.Generator().manual_seed(seed)
    v, e, h, b = config.vocab_size, config.n_embd, config.n_hidden, config.block_size
    C = torch.randn((v, e), generator=g)
    W1, b1 = torch.randn((b * e, h), generator=g), torch.randn(h, generator=g)
    W2, b2 = torch.randn((h, v), generator=g), torch.randn(v, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    start = time.perf_counter()
    for i in range(steps):
        ix = torch.randint(0, x.shape[0], (batch_size,), generator=g)
        emb = C[x[ix]]
        hidden = torch.tanh(emb.view(-1, b * e) @ W1 + b1)
        loss = F.cross_entropy(hidden @ W2 + b2, y[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < steps // 2 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        hidden = torch.tanh(C[x_val].view(-1, b * e) @ W1 + b1)
        val = F.cross_entropy(hidden @ W2 + b2, y_val).item()
    return steps / elapsed, val


def project_loop(
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: MLPConfig,
    steps: int,
    batch_size: int,
    seed: int,
) -> tuple[float, float]:
    """model.train.train_loop on the same data (its default 'scaled' init). Returns (steps/s, val)."""
    model = MLP(config, generator=torch.Generator().manual_seed(seed))
    history = train_loop(
        model, x, y, Schedule(steps, batch_size), torch.Generator().manual_seed(seed), progress=False
    )
    return steps / history.wall_seconds, evaluate(model, x_val, y_val)
