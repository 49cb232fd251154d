"""A small causal transformer in makemore's shape: token + learned position embeddings, `n_layer`
pre-LayerNorm blocks (causal multi-head self-attention, 4x MLP with GELU), final LayerNorm, head.

The reference preset is makemore's (4 layers, 4 heads, n_embd 64, block 16; 204,544 parameters for
27 characters, the head without bias as there) plus nanoGPT's dropout placement (embeddings,
attention weights, residual branches) at 0.1, and nanoGPT's init.

Context limit: learned positions exist for `block_size` ids only, so a prediction reads at most
the last `block_size` ids. `sequence_logits` on rows longer than that uses a sliding window:
position t predicts from ids[:, t - block_size + 1 : t + 1] placed at positions 0..block_size-1.
`step` keeps a key/value cache per layer while the prefix fits, then recomputes the last
`block_size` ids each step, so both give the same numbers. No cache can help past the context:
with learned absolute positions, every id of a slid window sits at a new position, so each of its
keys changes (`step_positions` tells the engine's cost bound).

References: karpathy/makemore `makemore.py` (Transformer), karpathy/nanoGPT `model.py`;
Vaswani et al., 2017; Radford et al., 2019 (GPT-2's pre-norm blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.families.base import CharModel, FamilyConfig
from model.families.registry import Family, register
from model.recipe import Recipe


@dataclass(frozen=True)
class TransformerConfig(FamilyConfig):
    block_size: int = 16
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")


# Rows whose window a step past the context recomputes at once (`Transformer.step`).
WINDOW_CHUNK_ROWS = 256

# makemore's constant 5e-4 was slow here (research note): AdamW with a cosine from 1e-3 to 1e-4.
RECIPE = Recipe(
    examples="sequences",
    optimizer="adamw",
    steps=10_000,
    batch_size=32,
    lr=1e-3,
    lr_after=1e-4,
    betas=(0.9, 0.99),
    weight_decay=0.01,
    eval_every=500,
)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention; plain masked softmax so that a cached step and a whole
    row compute the same sums (a fused kernel may pick different paths for the two shapes)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.dropout)
        self.resid_drop = nn.Dropout(config.dropout)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v [B, n_head, T, head_size] for x[B, T, C]."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        return tuple(z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))

    def attend(self, q, k, v, mask: torch.Tensor | None) -> torch.Tensor:
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        y = self.attn_drop(F.softmax(att, dim=-1)) @ v  # [B, n_head, Tq, head_size]
        b, _, t, _ = y.shape
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, -1)))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.fc_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.mlp_drop = nn.Dropout(config.dropout)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        # tanh-approximated GELU, as makemore's NewGELU
        return self.mlp_drop(self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh")))


class Transformer(CharModel):
    kind = "transformer"

    def __init__(self, config: TransformerConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        causal = torch.ones(config.block_size, config.block_size, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)  # derived, not a weight
        self._initialise(generator)

    @torch.no_grad()
    def _initialise(self, generator: torch.Generator | None) -> None:
        # nanoGPT: N(0, 0.02) weights, zero biases, LayerNorms at identity; the projections that
        # write into the residual stream scaled by 1/sqrt(2 n_layer) so its variance does not
        # grow with depth
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif ".ln_" in name or name.startswith("ln_"):
                p.fill_(1.0)
            else:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("proj.weight") else 0.02
                p.copy_(torch.randn(p.shape, generator=generator) * std)

    @property
    def context_limit(self) -> int:
        return self.config.block_size

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits[B, T, V] for ids[B, T] placed at positions 0..T-1 (T <= block_size)."""
        t = ids.shape[1]
        x = self.drop(self.wte(ids) + self.wpe.weight[:t])
        mask = self.causal[:t, :t]
        for block in self.blocks:
            x = x + block.attn.attend(*block.attn.heads(block.ln_1(x)), mask)
            x = x + block.mlp(x)
        return self.head(self.ln_f(x))

    def sequence_logits(self, ids: torch.Tensor) -> torch.Tensor:
        rows, length = ids.shape
        block = self.config.block_size
        if length <= block:
            return self._forward(ids)
        # sliding window: the first window gives positions 0..block-1; every later position is
        # the last prediction of the window that ends there
        windows = ids.unfold(1, block, 1)[:, 1:]  # [B, length - block, block]
        later = self._forward(windows.reshape(-1, block))[:, -1].view(rows, length - block, -1)
        return torch.cat([self._forward(ids[:, :block]), later], dim=1)

    def step_positions(self, position: int) -> int:
        """Within the context a step runs one position against the cached keys; past it, the whole
        window again (learned positions shift under every cached key). A window of 16 costs about
        what 6 cached steps do, not 16 (measured in float32, one thread: 124 against 21.7 us a row;
        a step's fixed costs are paid once either way): a third of the window, at least one."""
        block = self.config.block_size
        return 1 if position <= block else max(1, block // 3)

    def start(self, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids read so far [rows, t], keys and values [rows, n_layer, n_head, t, head_size]); the
        row dim first in every part, so the contract's default `keep` selects rows."""
        c = self.config
        device = self.head.weight.device
        kv = self.head.weight.new_zeros(rows, c.n_layer, c.n_head, 0, c.n_embd // c.n_head)
        return torch.zeros(rows, 0, dtype=torch.long, device=device), kv, kv

    def step(self, state, ids: torch.Tensor):
        seen, keys, values = state
        seen = torch.cat([seen, ids[:, None]], dim=1)
        t = seen.shape[1]
        if t > self.config.block_size:
            # positions have shifted under every cached key: recompute the window, a few hundred rows
            # at a time (bounds the activations: 2,000 rows at once peaked at +170 MB); the cache is
            # dropped, so `keep` no longer copies it
            window = seen[:, -self.config.block_size :]
            logits = torch.cat([
                self._forward(window[i : i + WINDOW_CHUNK_ROWS])[:, -1]
                for i in range(0, len(window), WINDOW_CHUNK_ROWS)
            ])  # fmt: skip
            return (seen, keys[:, :, :, :0], values[:, :, :, :0]), logits
        x = self.drop(self.wte(ids[:, None]) + self.wpe.weight[t - 1])  # [rows, 1, C]
        new_keys, new_values = [], []
        for i, block in enumerate(self.blocks):
            q, k, v = block.attn.heads(block.ln_1(x))
            k = torch.cat([keys[:, i], k], dim=2)
            v = torch.cat([values[:, i], v], dim=2)
            new_keys.append(k)
            new_values.append(v)
            x = x + block.attn.attend(q, k, v, None)  # one query sees every cached key: no mask
            x = x + block.mlp(x)
        state = (seen, torch.stack(new_keys, 1), torch.stack(new_values, 1))
        return state, self.head(self.ln_f(x[:, 0]))


FAMILY = register(
    Family(
        "transformer",
        TransformerConfig,
        Transformer,
        RECIPE,
        "makemore-style causal transformer (pre-LayerNorm, learned positions); reads the last block_size ids",
    )
)
