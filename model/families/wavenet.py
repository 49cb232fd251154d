"""Lecture 5's hierarchical MLP ("WaveNet"): characters fused in pairs, layer by layer.

A window of `block_size` ids is embedded; each level concatenates neighbouring pairs
(FlattenConsecutive(2)), then Linear (no bias: the norm's shift replaces it) -> norm -> tanh, so
block 8 takes three levels (8 -> 4 -> 2 -> 1) before the head. The reference preset is the
lecture's: block 8, n_embd 24, n_hidden 128, BatchNorm; 76,579 parameters for 27 characters.

BatchNorm normalises over the batch *and* the pair positions of a level, as the lecture's
BatchNorm1d does with dim (0, 1). For serving, `for_inference` folds each BatchNorm's running
statistics and affine into the Linear before it (see the research note's serving costs).

References: Karpathy, nn-zero-to-hero `makemore_part5_cnn1.ipynb`; van den Oord et al., "WaveNet", 2016.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from model.families.base import FamilyConfig, WindowModel
from model.families.registry import Family, register
from model.recipe import Recipe

NORMS = ("batch", "layer")


@dataclass(frozen=True)
class WaveNetConfig(FamilyConfig):
    block_size: int = 8
    n_embd: int = 24
    n_hidden: int = 128
    norm: str = "batch"  # "batch" (the lecture's; folded away for serving) or "layer"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.block_size < 2 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 2 (pairs fused), got {self.block_size}")


# The research note's measured run (test 2.038): SGD, batch 32, 0.1 then 0.01 for the last quarter.
RECIPE = Recipe(
    examples="windows",
    optimizer="sgd",
    steps=30_000,
    batch_size=32,
    lr=0.1,
    lr_after=0.01,
    decay_at=0.75,
    eval_every=1_000,
)


class Fuse(nn.Module):
    """One level: concatenate neighbouring pairs, Linear, norm, tanh. [N, T, C] -> [N, T/2, H]."""

    def __init__(self, n_in: int, n_hidden: int, norm: str):
        super().__init__()
        self.linear = nn.Linear(2 * n_in, n_hidden, bias=False)
        self.norm: nn.Module = nn.BatchNorm1d(n_hidden) if norm == "batch" else nn.LayerNorm(n_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        x = self.linear(x.reshape(n, t // 2, 2 * c))
        if isinstance(self.norm, nn.BatchNorm1d):
            # BatchNorm1d wants channels in dim 1 and then averages over dims 0 and 2: batch and pairs
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        return torch.tanh(x)


class WaveNet(WindowModel):
    kind = "wavenet"

    def __init__(self, config: WaveNetConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        levels = int(math.log2(config.block_size))
        widths = [config.n_embd] + [config.n_hidden] * levels
        self.levels = nn.ModuleList(Fuse(widths[i], widths[i + 1], config.norm) for i in range(levels))
        self.head = nn.Linear(config.n_hidden, config.vocab_size)
        self._initialise(generator)

    @torch.no_grad()
    def _initialise(self, generator: torch.Generator | None) -> None:
        # the lecture's init: N(0,1) embeddings, N(0,1)/sqrt(fan_in) weights, norms at identity,
        # and a head scaled by 0.1 so the first predictions are near-uniform, not confidently wrong
        self.embedding.weight.copy_(torch.randn(self.embedding.weight.shape, generator=generator))
        for linear in [level.linear for level in self.levels] + [self.head]:
            w = torch.randn(linear.weight.shape, generator=generator) / math.sqrt(linear.in_features)
            linear.weight.copy_(w)
        self.head.weight.mul_(0.1)
        self.head.bias.zero_()

    def window_logits(self, contexts: torch.Tensor) -> torch.Tensor:
        x = self.embedding(contexts)  # [N, block, n_embd]
        for level in self.levels:
            x = level(x)
        return self.head(x[:, 0])  # one position left after the last fusion

    def for_inference(self) -> WaveNet:
        """An eval-mode copy with every BatchNorm folded into the Linear before it (LayerNorm,
        which depends on each example, stays): BN(Wx) = (s * W) x + (beta - s * mean), with
        s = gamma / sqrt(running_var + eps)."""
        served = copy.deepcopy(self).eval()
        with torch.no_grad():
            for level in served.levels:
                bn = level.norm
                if not isinstance(bn, nn.BatchNorm1d):
                    continue
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                linear = level.linear
                folded = nn.Linear(linear.in_features, linear.out_features, device=linear.weight.device)
                folded.to(linear.weight.dtype)
                folded.weight.copy_(linear.weight * scale[:, None])
                folded.bias.copy_(bn.bias - bn.running_mean * scale)
                level.linear, level.norm = folded, nn.Identity()
        return served


FAMILY = register(
    Family(
        "wavenet",
        WaveNetConfig,
        WaveNet,
        RECIPE,
        "lecture 5's hierarchical MLP: characters fused in pairs, level by level, with BatchNorm",
    )
)
