"""The prefix table of a forward source: the state after '.' + a prefix, computed once, looked up.

Every prefix of 0, 1, 2, ... ids while a whole length fits `knobs.PREFIX_TABLE_BYTES` (the full
levels: 1 + 27 + 729 states, 3.3 MB for a GRU-256), then, in what is left, the likeliest prefixes
of the next length by the model's own probability of reaching them (the partial level: at 8 MiB,
1,052 three-letter prefixes, 83 % of the names that reach three letters). A name's draws are
lookups while its prefix is in the table, and so are a word's steps (where the partial level
holds some of a pass's prefixes, only the others are stepped).

Only for batch-invariant steps that can join states: the table is computed in passes of at most
`knobs.FORWARD_CHUNK_ROWS` rows, so each row is the bits it is in any pass, alone or batched.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from model.engine import knobs

State = object


class _Steps(Protocol):  # what a forward source lends the table to build it
    vocab_size: int

    def start(self, prefix: list[int]) -> State: ...
    def keep(self, state: State, rows: np.ndarray) -> State: ...
    def advance(self, state: State, ids: np.ndarray) -> State: ...
    def join(self, states: list[State]) -> State: ...


class PrefixTable(NamedTuple):
    state: State  # one row per tabled prefix, level by level (a source's state: gather with `keep`)
    plain_cdfs: np.ndarray  # each row's CDF unshaped (`plain_cdf`), what most draws read
    rows_of: list[np.ndarray]  # per prefix length k: int64[vocab**k], each code's row, -1 if absent
    full_levels: int  # prefix lengths below this have every code in the table

    @property
    def log_probs(self) -> np.ndarray:
        """float64[rows, vocab]: each row's next distribution (part of a forward source's state)."""
        return self.state[1]  # type: ignore[index]

    def rows(self, length: int, codes: np.ndarray) -> np.ndarray:
        """The rows of the prefixes of `length` ids with these codes (-1: not in the table)."""
        if length >= len(self.rows_of):
            return np.full(len(codes), -1, dtype=np.int64)
        return self.rows_of[length][codes]


def build_prefix_table(source: _Steps, row_bytes: int, budget_bytes: int) -> PrefixTable:
    """Levels of prefixes, each from its parents' states in passes of at most
    `knobs.FORWARD_CHUNK_ROWS` rows: whole levels while they fit `budget_bytes`, then the likeliest
    prefixes of the next length that fit what is left (none with the end id: a name has ended)."""
    v, room = source.vocab_size, budget_bytes // row_bytes
    first = source.keep(source.start([]), np.zeros(1, dtype=np.int64))  # after '.' alone
    levels = [first]
    rows_of = [np.zeros(1, dtype=np.int64)]
    codes, mass = np.zeros(1, dtype=np.int64), np.zeros(1)  # the last level's codes, log P(prefix)
    full, used = 1, 1
    while used < room and full == len(levels):
        children = (codes[:, None] * v + np.arange(v)).ravel()
        child_mass = (mass[:, None] + levels[-1][1]).ravel()  # type: ignore[index]
        child_mass[children % v == 0] = -np.inf  # the end id: nothing follows
        if used + len(children) <= room:
            chosen = np.arange(len(children))
        else:
            likeliest = np.argsort(-child_mass, kind="stable")[: room - used]
            chosen = np.sort(likeliest[np.isfinite(child_mass[likeliest])])
        level = _advance_in_passes(source, levels[-1], chosen // v, chosen % v)
        index = np.full(v ** len(levels), -1, dtype=np.int64)
        index[children[chosen]] = used + np.arange(len(chosen))
        full += len(chosen) == len(children)
        levels.append(level)
        rows_of.append(index)
        codes, mass, used = children[chosen], child_mass[chosen], used + len(chosen)
    state = source.join(levels)
    return PrefixTable(state, plain_cdf(state[1]), rows_of, full)  # type: ignore[index]


def plain_cdf(log_probs: np.ndarray) -> np.ndarray:
    """Each row's CDF of normalised log-probabilities (no shaping), row by row: a row's bits do
    not depend on the others."""
    cdf = np.exp(log_probs)  # already normalised: no max to subtract
    np.cumsum(cdf, axis=1, out=cdf)
    cdf /= cdf[:, -1:]
    return cdf


def _advance_in_passes(source: _Steps, parents: State, parent_rows: np.ndarray, ids: np.ndarray) -> State:
    chunk = knobs.FORWARD_CHUNK_ROWS
    return source.join([
        source.advance(source.keep(parents, parent_rows[i : i + chunk]), ids[i : i + chunk])
        for i in range(0, len(ids), chunk)
    ])  # fmt: skip
