"""Sampling names: all rows advance together, one character position per step.

One procedure, three implementations chosen for speed; for the same seed all return the same
names. Each step draws u in (0, 1] from one `random.Random`, for the unfinished rows in ascending
order, and takes the first id whose cumulative probability reaches u (bisect_left on the CDF).
A row ends at the end token (id 0, not kept) or after `steps` ids.

- `sample_rows_python`: per-row lookups in the context table's CDF rows; no numpy per-call
  overhead, so a handful of names costs microseconds;
- `sample_rows_vectorised` with `TableSteps`: the same lookups as array gathers, for many names;
- `sample_rows_vectorised` with `ForwardSteps`: a batched forward pass per step, for models too
  big for a table.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from typing import Protocol

import numpy as np

from model.distributions import ContextTable, ForwardPass, cdf_from_log_probs


class Shaping:
    """Temperature, top-k and 'no end token first': how raw distributions become CDFs."""

    def __init__(self, temperature: float = 1.0, top_k: int | None = None, forbid_end_first: bool = False):
        self.temperature = temperature
        self.top_k = top_k
        self.forbid_end_first = forbid_end_first
        self.plain = temperature == 1.0 and top_k is None

    def cdf(self, log_probs: np.ndarray, first_step: bool) -> np.ndarray:
        forbid = 0 if first_step and self.forbid_end_first else None
        return cdf_from_log_probs(log_probs, self.temperature, self.top_k, forbid)


def sample_rows_python(
    table: ContextTable, n: int, context: list[int], steps: int, rng: random.Random, shaping: Shaping
) -> list[list[int]]:
    """The procedure as a plain loop over rows, reading the table's CDF rows as Python lists."""
    shaped: dict[int, list[float]] = {}  # this call's CDF rows when temperature/top_k apply

    def cdf_row(code: int) -> list[float]:
        if shaping.plain:
            return table.cdf_rows[code]
        if code not in shaped:
            shaped[code] = shaping.cdf(table.table[code : code + 1], False)[0].tolist()
        return shaped[code]

    start = table.code(context)
    if not shaping.plain:
        first = shaping.cdf(table.table[start : start + 1], True)[0].tolist()
    elif shaping.forbid_end_first:
        first = table.cdf_row_without_end(start)
    else:
        first = table.cdf_rows[start]
    ids: list[list[int]] = [[] for _ in range(n)]
    rows, codes = list(range(n)), [start] * n
    draw = rng.random
    for t in range(steps):
        still_rows, still_codes = [], []
        for row, code in zip(rows, codes, strict=True):
            idx = bisect_left(first if t == 0 else cdf_row(code), 1.0 - draw())
            if idx:
                ids[row].append(idx)
                still_rows.append(row)
                still_codes.append(table.next_code(code, idx))
        rows, codes = still_rows, still_codes
        if not rows:
            break
    return ids


class StepDistributions(Protocol):
    """What the vectorised loop needs: the rows' CDFs, and their states after drawing ids."""

    def cdf(self, state: np.ndarray, first_step: bool) -> np.ndarray: ...

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray: ...


class TableSteps:
    """State: each row's context code."""

    def __init__(self, table: ContextTable, shaping: Shaping) -> None:
        self.table, self.shaping = table, shaping

    def start(self, context: list[int]) -> np.ndarray:
        return np.array([self.table.code(context)], dtype=np.int64)

    def cdf(self, state: np.ndarray, first_step: bool) -> np.ndarray:
        if self.shaping.plain and not first_step:
            return self.table.cdf_table[state]
        return self.shaping.cdf(self.table.table[state], first_step)

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return (state * self.table.vocab_size + ids) % self.table.contexts


class ForwardSteps:
    """State: each row's context ids, int64[rows, block_size]."""

    def __init__(self, source: ForwardPass, shaping: Shaping) -> None:
        self.source, self.shaping = source, shaping

    def start(self, context: list[int]) -> np.ndarray:
        return np.array([context], dtype=np.int64)

    def cdf(self, state: np.ndarray, first_step: bool) -> np.ndarray:
        return self.shaping.cdf(self.source.log_probs(state), first_step)

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.concatenate([state[:, 1:], ids[:, None]], axis=1)


def sample_rows_vectorised(
    steps_source: TableSteps | ForwardSteps, n: int, context: list[int], steps: int, rng: random.Random
) -> list[list[int]]:
    """The procedure with every row of a step handled by array operations at once."""
    ids: list[list[int]] = [[] for _ in range(n)]
    rows = np.arange(n)
    state = steps_source.start(context)
    for t in range(steps):
        cdf = steps_source.cdf(state, t == 0)
        if t == 0:  # every name shares the first context: one distribution served all draws
            state = np.repeat(state, n, axis=0)
        u = np.array([1.0 - rng.random() for _ in range(len(rows))])
        nxt = (cdf < u[:, None]).sum(axis=1)  # bisect_left, row by row
        going = nxt != 0
        rows, nxt, state = rows[going], nxt[going], state[going]
        for row, idx in zip(rows.tolist(), nxt.tolist(), strict=True):
            ids[row].append(idx)
        if not len(rows):
            break
        state = steps_source.advance(state, nxt)
    return ids
