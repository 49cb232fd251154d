"""A recurrent character model: embedding -> GRU -> dropout -> linear head.

It reads the whole prefix (no block size): the hidden state after each id summarises every id so
far. Dropout on the embedding output and on the GRU output is what keeps the 256-unit layer from
overfitting (the research note: without it val turns up from ~2k steps; with 0.3 it reached
val 1.959 / test 1.969 in 6,000 steps). The reference preset has 255,963 parameters for 27
characters: 27*64 + 3*256*(64 + 256) + 2*3*256 + 256*27 + 27.

A conditional variant (`condition="gender"`, `condition_values="female,male"`) adds a learned
label embedding to every input step: id 0 is "no condition", ids 1.. the values. Training drops
the label for a share of the rows (`condition_dropout`, in `model.training`), so one model answers
with or without a condition; `conditioned(c)` is the model with its label fixed, which the engine
serves like any unconditional model. Plain configs (no condition) build exactly today's GRU.

References: Cho et al., 2014 (the GRU); karpathy/makemore `makemore.py` (its RNN/GRU cells, here
torch's fused nn.GRU); PyTorch's nn.GRU documentation for the gate order (r, z, n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model.families.base import CharModel, FamilyConfig, State
from model.families.dense import Dense
from model.families.registry import Family, register
from model.recipe import Recipe


@dataclass(frozen=True)
class GRUConfig(FamilyConfig):
    n_embd: int = 64
    n_hidden: int = 256
    n_layer: int = 1
    dropout: float = 0.3
    condition: str = ""  # a label key such as "gender"; "" for an unconditional model
    condition_values: str = ""  # its values, comma-separated: "female,male"
    condition_dropout: float = 0.25  # share of training rows read without their label
    # Serving only: classifier-free guidance weight w of each value's next-character distribution,
    # (1 + w) log p(. | value) - w log p(. | no condition), renormalised; 0 = the model as trained.
    condition_guidance: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        values = self.values
        if bool(self.condition) != bool(values) or len(set(values)) != len(values) or "" in values:
            raise ValueError(
                "condition and condition_values go together: a key and distinct, comma-separated values"
            )

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self.condition_values.split(",")) if self.condition_values else ()


# The research note's measured recipe: whole names, AdamW, cosine from 3e-3 to 1e-4.
RECIPE = Recipe(
    examples="sequences",
    optimizer="adamw",
    steps=6_000,
    batch_size=64,
    lr=3e-3,
    lr_after=1e-4,
    betas=(0.9, 0.99),
    weight_decay=0.01,
    eval_every=250,
)


class GRU(CharModel):
    kind = "gru"

    def __init__(self, config: GRUConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        # between stacked layers torch applies its own dropout; with one layer it would only warn
        between = config.dropout if config.n_layer > 1 else 0.0
        self.gru = nn.GRU(config.n_embd, config.n_hidden, config.n_layer, batch_first=True, dropout=between)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.n_hidden, config.vocab_size)
        # id 0: no condition; ids 1..: the values. Only a conditional config has it.
        self.condition_embedding = (
            nn.Embedding(1 + len(config.values), config.n_embd) if config.condition else None
        )
        self._initialise(generator)

    @torch.no_grad()
    def _initialise(self, generator: torch.Generator | None) -> None:
        # torch's default distributions (those the recipe was measured with), drawn from `generator`
        # so a seed reproduces them: N(0,1) embeddings, U(+-1/sqrt(hidden)) for the GRU and head
        self.embedding.weight.copy_(torch.randn(self.embedding.weight.shape, generator=generator))
        bound = 1 / math.sqrt(self.config.n_hidden)
        for p in [*self.gru.parameters(), *self.head.parameters()]:
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
        if self.condition_embedding is not None:  # drawn last: the plain GRU's draws stay as they were
            weight = self.condition_embedding.weight
            weight.copy_(torch.randn(weight.shape, generator=generator))
            weight[0] = 0.0  # "no condition" starts as the plain model's input

    @property
    def conditions(self) -> dict[str, tuple[str, ...]]:
        return {self.config.condition: self.config.values} if self.config.condition else {}

    def embed(self, ids: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """Input vectors of ids[B, T]: the character embedding (through dropout) plus, for a
        conditional model, the embedding of each row's condition id (condition[B], one int for all
        rows, None = 0), which dropout never touches: the label reaches every step whole."""
        x = self.drop(self.embedding(ids))
        if self.condition_embedding is None:
            if condition is not None and not (isinstance(condition, int) and condition == 0):
                raise ValueError("this GRU takes no condition")
            return x
        if condition is None or isinstance(condition, int):
            c = self.condition_embedding.weight[condition or 0]
            return x + c
        return x + self.condition_embedding(condition)[:, None, :]

    def sequence_logits(self, ids: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        out, _ = self.gru(self.embed(ids, condition))
        return self.head(self.drop(out))

    def conditioned(self, condition: int) -> CharModel:
        if self.condition_embedding is None:
            return super().conditioned(condition)
        if not 0 <= condition <= len(self.config.values):
            raise ValueError(f"condition id {condition} is out of range")
        return ConditionedGRU(self, condition)

    def start(self, rows: int) -> torch.Tensor:
        """Zero hidden state [n_layer, rows, n_hidden] (torch's layout: rows are dim 1)."""
        p = self.head.weight
        return p.new_zeros(self.config.n_layer, rows, self.config.n_hidden)

    def step(
        self, state: torch.Tensor, ids: torch.Tensor, condition: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.gru(self.embed(ids[:, None], condition), state)
        return state, self.head(self.drop(out[:, 0]))

    def keep(self, state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return state.index_select(1, rows)

    def numpy_steps(self) -> NumpyGRU:
        return NumpyGRU.of(self)


class ConditionedGRU(CharModel):
    """A GRU with its condition id fixed (0 = none): the plain step contract, sharing the weights."""

    kind = "gru"

    def __init__(self, model: GRU, condition: int) -> None:
        super().__init__()
        self.model, self.condition, self.config = model, condition, model.config

    def sequence_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.sequence_logits(ids, self.condition)

    def start(self, rows: int) -> torch.Tensor:
        return self.model.start(rows)

    def step(self, state: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.step(state, ids, self.condition)

    def keep(self, state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.model.keep(state, rows)

    def numpy_steps(self) -> NumpyGRU:
        return NumpyGRU.of(self.model, self.condition)


def double_candidate(rows: torch.Tensor, hidden: int) -> torch.Tensor:
    """A float32 copy with the candidate's rows (the last hidden of the r, z, n rows) times 2: a step
    then gets 2x for tanh(x) = 2 sigmoid(2x) - 1 without an array operation. Exact: doubling every
    product and sum doubles the result bit for bit (nothing here comes near float32's overflow)."""
    out = rows.detach().to("cpu", torch.float32).clone()
    out[2 * hidden :] *= 2.0
    return out


def sigmoid_(x: np.ndarray) -> None:
    """x = 1 / (1 + exp(-x)) in place, by torch's vectorised kernel: on the AVX2 EPYC 1.2 ns an
    element against 3.7 for NumPy's float32 tanh (196,608 elements, one thread, medians of 7).
    Each element's bits depend on its position only where an array's length leaves a remainder
    past the last full vector of 16 (2 x 8 floats; 32 with AVX-512), which the scalar formula
    computes: a step's gate arrays are rows x a multiple of the hidden size, never such a remainder
    for the 256-unit models (the start-up self-test, `model.engine.invariance`, checks every model)."""
    torch.from_numpy(x).sigmoid_()


class NumpyGRU:
    """The GRU's eval-mode steps in float32 NumPy: for one name about 4x cheaper than torch's calls.

    The first layer's input projection `emb @ W_ih.T + b_ih` is a lookup in a [V, 3H] table. Each
    layer's new hidden state h then goes through ONE dense layer (`model.families.dense`) that
    computes everything h feeds: the next step's `W_hh h + b_hh` and this step's input to the layer
    above (`W_ih h + b_ih`) or, for the last layer, the head's logits. One kernel call per layer and
    step instead of two (16 rows: about 48 us against 45 + 14), with the same bits per column as
    separate calls. Gates in torch's order (r, z, n; r multiplies `W_hn h + b_hn`), the candidate's
    projections stored doubled (`double_candidate`), all three gates through one sigmoid kernel
    (`sigmoid_`).
    State: per layer, (h [rows, H], ahead [rows, 3H + width]): ahead's first 3H columns are the
    next step's `W_hh h + b_hh`.
    """

    def __init__(self, input_table: np.ndarray, dense: list[Dense]) -> None:
        self.input_table = input_table  # [V, 3H]: layer 0's input projection of every id
        self.dense = dense  # per layer: h -> [W_hh h + b_hh | the layer above's input or the logits]
        self.hidden = input_table.shape[1] // 3

    @classmethod
    @torch.no_grad()
    def of(cls, model: GRU, condition: int = 0) -> NumpyGRU:
        gru, n_layer, hidden = model.gru, model.config.n_layer, model.config.n_hidden
        dense = []
        for i in range(n_layer):
            weight = [double_candidate(getattr(gru, f"weight_hh_l{i}"), hidden)]
            bias = [double_candidate(getattr(gru, f"bias_hh_l{i}"), hidden)]
            if i + 1 < n_layer:  # h feeds the layer above: its gates too
                weight.append(double_candidate(getattr(gru, f"weight_ih_l{i + 1}"), hidden))
                bias.append(double_candidate(getattr(gru, f"bias_ih_l{i + 1}"), hidden))
            else:  # h feeds the head
                weight.append(model.head.weight)
                bias.append(model.head.bias)
            dense.append(Dense(torch.cat(weight), torch.cat(bias)))
        inputs = model.embedding.weight
        if model.condition_embedding is not None:  # the condition's vector joins every id's input
            inputs = inputs + model.condition_embedding.weight[condition]
        table = double_candidate((inputs @ gru.weight_ih_l0.T + gru.bias_ih_l0).T, hidden).T
        return cls(np.ascontiguousarray(table.numpy()), dense)

    def start(self, rows: int) -> State:
        """h = 0, so `W_hh h + b_hh` is b_hh (the rest of `ahead` is never read from a start)."""
        state = []
        for dense in self.dense:
            ahead = np.zeros((rows, dense.out_features), dtype=np.float32)
            ahead[:] = dense.bias.numpy()
            state.append((np.zeros((rows, self.hidden), dtype=np.float32), ahead))
        return tuple(state)

    def step(self, state: State, ids: np.ndarray) -> tuple[State, np.ndarray]:
        h_size = self.hidden
        gi = self.input_table[ids]
        new_state = []
        for (h_old, ahead), dense in zip(state, self.dense, strict=True):
            gh = ahead[:, : 3 * h_size]
            # in place where possible: at 10,000 rows the gates' temporaries cost as much as the matmul
            rz = gi[:, : 2 * h_size] + gh[:, : 2 * h_size]
            sigmoid_(rz)
            n = gh[:, 2 * h_size :] * rz[:, :h_size]
            n += gi[:, 2 * h_size :]  # 2x (`double_candidate`)
            sigmoid_(n)
            n *= 2.0
            n -= 1.0  # tanh(x) = 2 sigmoid(2x) - 1
            h = h_old - n
            h *= rz[:, h_size:]
            h += n  # h' = (1 - z) n + z h = n + z (h - n)
            ahead = dense(h)
            new_state.append((h, ahead))
            gi = ahead[:, 3 * h_size :]  # the layer above's input projection, or the logits
        return tuple(new_state), gi

    def keep(self, state: State, rows: np.ndarray) -> State:
        return tuple((h[rows], ahead[rows]) for h, ahead in state)

    joinable = True

    def put(self, state: State, places: np.ndarray, new: State) -> State:
        """`state` with the first len(places) rows of `new` written into rows `places`."""
        for (h, ahead), (new_h, new_ahead) in zip(state, new, strict=True):
            h[places], ahead[places] = new_h[: len(places)], new_ahead[: len(places)]
        return state

    def join(self, states: list[State]) -> State:
        """One state of the rows of `states`, in order."""
        return tuple(
            (np.concatenate([s[i][0] for s in states]), np.concatenate([s[i][1] for s in states]))
            for i in range(len(self.dense))
        )


FAMILY = register(
    Family("gru", GRUConfig, GRU, RECIPE, "embedding -> GRU -> dropout -> head; reads the whole prefix")
)
