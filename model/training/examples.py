"""Training examples as a family reads them, with one loss and one evaluation for every kind.

`Windows`: context windows X[N, block] and targets Y[N] (window families, the seed's recipe).
`Sequences`: whole names, inputs '.' + name and targets name + '.' (sequence families).
`LabelledSequences`: whole names with each name's label shares, for a conditional model.
All measure the same thing: mean NLL in nats per prediction, every character and the end token
(a conditional model evaluated without a condition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from model.data import IGNORE_TARGET, build_sequences, build_windows
from model.families import CharModel
from model.vocab import Vocab


class Windows(NamedTuple):
    x: torch.Tensor  # [N, block_size]
    y: torch.Tensor  # [N]

    @classmethod
    def of(
        cls, words: list[str], vocab: Vocab, block_size: int, device: torch.device | str = "cpu"
    ) -> Windows:
        x, y = build_windows(words, vocab, block_size)
        return cls(x.to(device), y.to(device))

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def predictions(self) -> int:
        return len(self.y)

    def batch_loss(self, model: CharModel, ix: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(self.x[ix]), self.y[ix])

    def nll_sum(self, model: CharModel, start: int, stop: int) -> float:
        logits = model(self.x[start:stop])
        return F.cross_entropy(logits, self.y[start:stop], reduction="sum").item()


@dataclass(frozen=True)
class Sequences:
    inputs: torch.Tensor  # [N, T]
    targets: torch.Tensor  # [N, T], IGNORE_TARGET after each name's end

    @classmethod
    def of(cls, words: list[str], vocab: Vocab, device: torch.device | str = "cpu") -> Sequences:
        inputs, targets = build_sequences(words, vocab)
        return cls(inputs.to(device), targets.to(device))

    @property
    def rows(self) -> int:
        return len(self.inputs)

    @property
    def predictions(self) -> int:
        return int((self.targets != IGNORE_TARGET).sum())

    def batch_loss(self, model: CharModel, ix: torch.Tensor) -> torch.Tensor:
        logits = model.sequence_logits(self.inputs[ix])
        return F.cross_entropy(logits.flatten(0, 1), self.targets[ix].flatten(), ignore_index=IGNORE_TARGET)

    def nll_sum(self, model: CharModel, start: int, stop: int) -> float:
        logits = model.sequence_logits(self.inputs[start:stop])
        targets = self.targets[start:stop].flatten()
        return F.cross_entropy(
            logits.flatten(0, 1), targets, ignore_index=IGNORE_TARGET, reduction="sum"
        ).item()


Examples = Windows | Sequences


@torch.inference_mode()
def evaluate(model: CharModel, examples: Examples, chunk: int = 1 << 16) -> float:
    """Mean NLL (nats per prediction) of `model` over all of a split's examples, in eval mode."""
    if examples.predictions == 0:
        return math.nan
    was_training = model.training
    model.eval()
    rows = chunk if isinstance(examples, Windows) else max(1, chunk // examples.inputs.shape[1])
    total = sum(examples.nll_sum(model, start, start + rows) for start in range(0, examples.rows, rows))
    model.train(was_training)
    return total / examples.predictions


def draw_conditions(shares: torch.Tensor, drop: float) -> torch.Tensor:
    """A condition id per row (0 = none, 1.. the values): the label drawn from the row's shares
    (soft labels), or none for an unlabelled row (all-zero shares) and for a `drop` share of rows.
    Draws from torch's global generator, seeded by the run like dropout's."""
    u = torch.rand((len(shares), 2), device=shares.device, dtype=shares.dtype)
    value = (shares.cumsum(1) < u[:, 1:]).sum(1).clamp(max=shares.shape[1] - 1)
    keep = (shares.sum(1) > 0) & (u[:, 0] >= drop)
    return torch.where(keep, value + 1, torch.zeros_like(value))


@dataclass(frozen=True)
class LabelledSequences(Sequences):
    """Whole names and each name's share of every label value (all zero when unlabelled); each
    batch draws every row's condition afresh, so over training a name that is 70 % female is read
    as female about 70 % of the times it is read with a label."""

    shares: torch.Tensor  # [N, values]
    drop: float  # share of rows read without their label

    @classmethod
    def labelled(
        cls, words: list[str], vocab: Vocab, shares: torch.Tensor, drop: float, device: torch.device | str
    ) -> LabelledSequences:
        inputs, targets = build_sequences(words, vocab)
        return cls(inputs.to(device), targets.to(device), shares.to(device), drop)

    def batch_loss(self, model: CharModel, ix: torch.Tensor) -> torch.Tensor:
        conditions = draw_conditions(self.shares[ix], self.drop)
        logits = model.sequence_logits(self.inputs[ix], conditions)  # type: ignore[call-arg]
        return F.cross_entropy(logits.flatten(0, 1), self.targets[ix].flatten(), ignore_index=IGNORE_TARGET)
