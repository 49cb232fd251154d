"""The contract every model family meets: ids in, logits out, whole sequences or one step at a time.

A family is one module under `model.families` holding a frozen config dataclass (with its
reference preset) and an `nn.Module` subclass of `CharModel`. The engine only ever calls the
methods below, so it serves any family the same way:

- `sequence_logits(ids)`: teacher-forced logits for whole rows that start with the boundary id 0
  (scoring words, evaluating a split);
- `start(rows)` / `step(state, ids)` / `keep(state, rows)`: one position at a time for sampling,
  where `keep` drops finished rows so only rows still running are forwarded.

A conditional model (today the GRU with a `condition`) also reads a label per row: `conditions`
names its key and values, and `conditioned(c)` is the model with condition id c fixed (0 = none,
1.. the values in order), which meets the contract above like any unconditional model.

Window families (bigram, mlp, wavenet) predict from the last `window` ids, left-padded with the
boundary: `WindowModel` derives the whole contract from one method, `window_logits`, and the
engine may replace them by an exact table of every context. Sequence families (gru,
transformer) read the whole prefix (or up to `context_limit` ids of it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from model.vocab import BOUNDARY_ID

State = Any  # a family's own per-row state: a tensor, or a tuple of tensors


@dataclass(frozen=True)
class FamilyConfig:
    """Base of every family's config: integers are positive sizes, `*dropout` fields probabilities,
    other floats finite and non-negative."""

    vocab_size: int

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool | str):
                continue
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
            if isinstance(value, float):
                ok = 0.0 <= value < 1.0 if name.endswith("dropout") else 0.0 <= value < float("inf")
                if not ok:
                    raise ValueError(f"{name} is out of range: {value}")


class NumpySteps(Protocol):
    """`CharModel`'s step contract in NumPy (ids int64[rows] in, logits[rows, V] out): an optional
    inference path for a family whose small steps are dominated by torch's per-call overhead."""

    def start(self, rows: int) -> State: ...

    def step(self, state: State, ids: np.ndarray) -> tuple[State, np.ndarray]: ...

    def keep(self, state: State, rows: np.ndarray) -> State: ...


class CharModel(nn.Module):
    """A character-level language model as the engine sees it (see the module docstring)."""

    kind: ClassVar[str]  # the checkpoint's `model.kind`
    config: FamilyConfig

    @property
    def window(self) -> int | None:
        """How many previous ids (padded with '.') a prediction reads, when it reads a fixed window;
        None for families that read the prefix itself."""
        return None

    @property
    def context_limit(self) -> int | None:
        """The most previous ids any prediction reads (None: all of them)."""
        return self.window

    def sequence_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """logits[B, T, V] for ids[B, T]: logits[:, t] predict the id after ids[:, : t + 1]."""
        raise NotImplementedError

    def step_positions(self, position: int) -> int:
        """Positions a `step` reading the `position`-th id ('.' is the first) runs through the network:
        its cost in single-position passes, for the engine's cost bound. One for most families."""
        return 1

    @property
    def conditions(self) -> dict[str, tuple[str, ...]]:
        """The label key and its values this model reads ({} for an unconditional model)."""
        return {}

    def conditioned(self, condition: int) -> CharModel:
        """This model with condition id `condition` fixed (0 = none, 1.. each value in order)."""
        if condition != 0:
            raise ValueError(f"{self.kind} model takes no condition")
        return self

    def numpy_steps(self) -> NumpySteps | None:
        """The same steps in NumPy (equal logits to ~1e-5), where they measure faster; None when the
        family has none. Called on the module `for_inference` returned."""
        return None

    def for_inference(self) -> CharModel:
        """The module to serve: eval mode, and any training-only structure folded away (e.g. a
        BatchNorm folded into the linear layer before it). Same numbers as `self.eval()`."""
        return self.eval()

    def start(self, rows: int) -> State:
        """The state of `rows` rows before any id is read."""
        raise NotImplementedError

    def step(self, state: State, ids: torch.Tensor) -> tuple[State, torch.Tensor]:
        """Read ids[rows] (one per row); return the new state and logits[rows, V] for the next id."""
        raise NotImplementedError

    def keep(self, state: State, rows: torch.Tensor) -> State:
        """The state of only `rows` (indices into the current rows)."""
        if isinstance(state, tuple):
            return tuple(self.keep(part, rows) for part in state)
        return state.index_select(0, rows)


class WindowModel(CharModel):
    """A family that predicts from the last `block_size` ids, left-padded with the boundary id.

    Training feeds it windows: `forward(contexts[N, block_size]) -> logits[N, V]`.
    """

    def window_logits(self, contexts: torch.Tensor) -> torch.Tensor:
        """logits[N, V] for contexts[N, block_size] of ids."""
        raise NotImplementedError

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.window_logits(contexts)

    @property
    def window(self) -> int:
        return self.config.block_size  # type: ignore[attr-defined]

    def sequence_logits(self, ids: torch.Tensor) -> torch.Tensor:
        rows, length = ids.shape
        padded = torch.cat([ids.new_full((rows, self.window - 1), BOUNDARY_ID), ids], dim=1)
        contexts = padded.unfold(1, self.window, 1)  # [B, T, window]
        return self.window_logits(contexts.reshape(-1, self.window)).view(rows, length, -1)

    def start(self, rows: int) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.full((rows, self.window), BOUNDARY_ID, dtype=torch.long, device=device)

    def step(self, state: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = torch.cat([state[:, 1:], ids[:, None]], dim=1)
        return state, self.window_logits(state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
