"""Sampling names by inverse-CDF draws: one procedure, implemented for small and for large n.

For a draw u in (0, 1] the next id is the first whose cumulative (shaped) probability reaches u
(bisect_left). A row ends at the end token (id 0, not counted) or after `steps` ids. Each row also
sums the UNSHAPED model's log-probability of every prediction, the end token included (also for a
row cut at `steps`), so a name's loss comes with it, equal to what `word_losses` would say.

Draw t of a row is `uniforms(seed, r, t)`, a counter-based hash of the row's stream key (the
request's seed and the row's index in that request), so it does not depend on the order rows
and steps are visited in, nor on which other requests' rows share the call: every
implementation, alone or batched, returns the same names:
- `sample_rows_python`: one name after the other, reading the table's CDF rows as Python lists;
  no per-call overhead, so a few names cost microseconds;
- `sample_rows_vectorised`: all rows advance together, one position per step, as array operations
  over the unfinished rows: `TableSteps` gathers from the table (many names), `ForwardSteps` runs
  one batched forward pass per step (models too big for a table).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple, Protocol

import numpy as np

from model.distributions import ContextTable, ForwardPass, cdf_from_log_probs
from model.hashing import GOLDEN_GAMMA, splitmix64

_MAX_STEPS = np.uint64(1 << 16)  # draws per row the counter leaves room for
_ONE, _S11 = np.uint64(1), np.uint64(11)
DRAW_BLOCK = 8  # steps of draws the vectorised loop computes at once (most names end within 8)


class StreamKeys(NamedTuple):
    """Each row's random stream: its request's seed and its index within that request."""

    seeds: np.ndarray  # uint64[n]
    rows: np.ndarray  # uint64[n]

    @classmethod
    def of_requests(cls, requests: list[tuple[int, int]]) -> StreamKeys:
        """Keys for the rows of several (n, seed) requests, one after the other."""
        seeds = np.concatenate([np.full(n, seed, dtype=np.uint64) for n, seed in requests])
        rows = np.concatenate([np.arange(n, dtype=np.uint64) for n, _ in requests])
        return cls(seeds, rows)


def uniforms(seeds: np.ndarray, rows: np.ndarray, step: np.ndarray | int) -> np.ndarray:
    """Draws in (0, 1] for (stream, step) pairs: the SplitMix64 finaliser of a per-draw counter."""
    counter = rows * _MAX_STEPS + np.asarray(step, dtype=np.uint64)
    z = splitmix64(seeds + (counter + _ONE) * GOLDEN_GAMMA)
    return 1.0 - (z >> _S11).astype(np.float64) * 2.0**-53


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


Sampled = tuple[list[str], list[float]]  # each row's characters, and its summed log-probabilities


def sample_rows_python(
    table: ContextTable, alphabet: str, keys: StreamKeys, context: list[int], steps: int, shaping: Shaping
) -> Sampled:
    """Names one after the other, reading the table's rows as Python lists."""
    rows_cdf: dict[int, list[float]] = {}  # with temperature/top_k: the shaped rows met so far

    def cdf_row(code: int) -> list[float]:
        if shaping.plain:
            return table.cdf_rows[code]
        if code not in rows_cdf:
            rows_cdf[code] = shaping.cdf(table.table[code : code + 1], False)[0].tolist()
        return rows_cdf[code]

    start = table.code(context)
    if shaping.plain:
        first = table.first_cdf_row(start, shaping.forbid_end_first)
    else:
        first = shaping.cdf(table.table[start : start + 1], True)[0].tolist()
    step_ids = np.arange(steps, dtype=np.uint64)[None, :]
    draws = uniforms(keys.seeds[:, None], keys.rows[:, None], step_ids).tolist()
    log_prob, v, contexts = table.table.item, table.vocab_size, table.contexts
    texts, sums = [], []
    for row_draws in draws:
        code, cdf, lp, chars = start, first, 0.0, []
        for u in row_draws:
            idx = bisect_left(cdf, u)
            lp += log_prob(code, idx)
            if not idx:
                break
            chars.append(alphabet[idx])
            code = (code * v + idx) % contexts
            cdf = cdf_row(code)
        else:  # cut at `steps`: score the end token too
            lp += log_prob(code, 0)
        texts.append("".join(chars))
        sums.append(lp)
    return texts, sums


class StepDistributions(Protocol):
    """What the vectorised loop needs about the unfinished rows' states."""

    def start(self, context: list[int]) -> np.ndarray: ...

    def cdf(self, state: np.ndarray, first_step: bool) -> np.ndarray: ...

    def log_prob(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray: ...

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray: ...


class TableSteps:
    """Steps gathered from the context table. State: each row's context code."""

    def __init__(self, table: ContextTable, shaping: Shaping) -> None:
        self.table, self.shaping = table, shaping

    def start(self, context: list[int]) -> np.ndarray:
        return np.array([self.table.code(context)], dtype=np.int64)

    def cdf(self, state: np.ndarray, first_step: bool) -> np.ndarray:
        if self.shaping.plain and not first_step:
            return self.table.cdf_table.take(state, axis=0)
        return self.shaping.cdf(self.table.table.take(state, axis=0), first_step)

    def log_prob(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Unshaped log p(ids | state), row by row (a one-row state serves every row)."""
        return self.table.table[state, ids]

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return (state * self.table.vocab_size + ids) % self.table.contexts


class ForwardSteps:
    """Steps through the forward pass. State: each row's context ids, int64[rows, block_size]."""

    def __init__(self, source: ForwardPass, shaping: Shaping) -> None:
        self.source, self.shaping = source, shaping
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (state, its log-probs)

    def start(self, context: list[int]) -> np.ndarray:
        return np.array([context], dtype=np.int64)

    def _log_probs(self, state: np.ndarray) -> np.ndarray:
        if self._last is None or self._last[0] is not state:
            self._last = (state, self.source.log_probs(state))
        return self._last[1]

    def cdf(self, state: np.ndarray, first_step: bool) -> np.ndarray:
        return self.shaping.cdf(self._log_probs(state), first_step)

    def log_prob(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        rows = np.arange(len(ids)) if len(state) > 1 else np.zeros(len(ids), dtype=np.int64)
        return self._log_probs(state)[rows, ids]

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.concatenate([state[:, 1:], ids[:, None]], axis=1)


def sample_rows_vectorised(
    steps_source: StepDistributions, alphabet: str, keys: StreamKeys, context: list[int], steps: int
) -> Sampled:
    """All rows advance together, one character position per step, as array operations."""
    n = len(keys.seeds)
    ids = np.zeros((n, steps), dtype=np.int64)
    lengths = np.full(n, steps, dtype=np.int64)
    sums = np.zeros(n)
    rows = np.arange(n)
    state = steps_source.start(context)  # one row: every name shares the first context
    for t in range(steps):
        if t % DRAW_BLOCK == 0:  # the next block of draws for the rows still going
            block_steps = np.arange(t, min(t + DRAW_BLOCK, steps), dtype=np.uint64)
            block = uniforms(keys.seeds[rows, None], keys.rows[rows, None], block_steps[None, :]).ravel()
            in_block = np.arange(len(rows)) * len(block_steps)
        cdf = steps_source.cdf(state, t == 0)
        draws = block.take(in_block + t % DRAW_BLOCK)
        nxt = (cdf < draws[:, None]).argmin(axis=1)  # bisect_left, row by row (the last column is 1)
        sums[rows] += steps_source.log_prob(state, nxt)
        if t == 0:
            state = np.repeat(state, n, axis=0)
        ids[rows, t] = nxt
        going = nxt != 0
        lengths[rows[~going]] = t
        rows, state = rows[going], steps_source.advance(state[going], nxt[going])
        in_block = in_block[going]
        if not len(rows):
            break
    else:  # rows cut at `steps`: score the end token too (state holds their last context)
        sums[rows] += steps_source.log_prob(state, np.zeros(len(rows), dtype=np.int64))
    return decode_rows(alphabet, ids, lengths), sums.tolist()


def decode_rows(alphabet: str, ids: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Rows of ids to strings in one vectorised step (UTF-32 keeps every character 4 bytes)."""
    width = ids.shape[1]
    if width == 0:
        return [""] * len(ids)
    code_points = np.frombuffer(alphabet.encode("utf-32-le"), dtype=np.uint32)
    text = code_points[ids].tobytes().decode("utf-32-le")
    return [text[i * width : i * width + length] for i, length in enumerate(lengths.tolist())]
