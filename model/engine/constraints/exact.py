"""The exact conditional of a table model: a backward pass, then draws proportional to p * beta.

For a window model every next-character distribution is a row of a table over C = V^window
contexts. With the request's automaton (S states) and its length window, the backward pass
computes beta_t(c, s): the probability, under the SHAPED model (temperature, top-k, top-p), that
a name now in context c and automaton state s with t letters drawn after the prefix ends inside
the language. Then each step draws id j with probability q(c, j) * beta_{t+1}(c·j, s·j) / beta_t(c, s)
(the end token: q(c, end) times whether s accepts at this length): exactly p(name | name in L).
beta_0 at the start is p_constraint. A step of the pass is one batched matrix product over the
contexts sharing their last window-1 letters: O(C · V · S) per position.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from model.engine.constraints.language import Language
from model.engine.sampler import Sampled, StreamKeys, decode_rows, uniforms
from model.engine.shaping import Shaping


def shaped_probs(log_probs: np.ndarray, shaping: Shaping, first_step: bool) -> np.ndarray:
    """The probabilities draws are made from (the differences of the shaped CDF)."""
    return np.diff(shaping.cdf(log_probs, first_step), axis=1, prepend=0.0)


@dataclass(frozen=True)
class Backward:
    """A language's backward pass over one table: beta per position, and the first step's
    exact conditional weights (their sum is p_constraint)."""

    q: np.ndarray  # float64[C, V]: shaped next-character probabilities of every context
    betas: dict[int, np.ndarray]  # t -> float64[C, S], for t = 1 .. steps
    first: np.ndarray  # float64[V]: q(start, j) * beta_1(start·j, s·j), the end term included
    start_code: int

    @property
    def p_constraint(self) -> float:
        return float(self.first.sum())

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.betas.values()) + self.first.nbytes

    def conditional_first(self) -> np.ndarray:
        """p(next character | prefix, name in L), alphabet order ('.' = end); all zeros when the
        shaped model gives L probability 0."""
        total = self.first.sum()
        return self.first / total if total > 0 else np.zeros_like(self.first)


def backward_pass(
    table: np.ndarray, window: int, language: Language, shaping: Shaping, start_code: int
) -> Backward:
    """Compute beta for every position of `language` over the log-probability `table`."""
    contexts, v = table.shape
    tail = contexts // v  # contexts sharing the last window-1 letters
    q = shaped_probs(table, shaping, first_step=False)
    q_by_tail = np.ascontiguousarray(q.reshape(v, tail, v).transpose(1, 0, 2))  # [tail, oldest, j]
    delta, accepting = language.dfa.delta, language.dfa.accepting
    prefix_len, steps = len(language.prefix), language.steps
    ids = np.arange(v)[None, :]

    def end_weight(letters: int) -> np.ndarray:
        return (accepting & (language.lo <= letters <= language.hi)).astype(np.float64)

    def continuation(beta_next: np.ndarray) -> np.ndarray:
        """float64[C, S]: sum over letters j of q(c, j) * beta_next(c·j, s·j)."""
        gathered = beta_next.reshape(tail, v, -1)[:, ids, delta]  # [tail, S, V]
        gathered[:, :, 0] = 0.0
        out = np.matmul(q_by_tail, gathered.transpose(0, 2, 1))  # [tail, oldest, S]
        return out.transpose(1, 0, 2).reshape(contexts, -1)

    betas: dict[int, np.ndarray] = {}
    beta_next = None
    for t in range(steps, 0, -1):
        beta = q[:, :1] * end_weight(prefix_len + t)[None, :]
        if beta_next is not None:
            beta += continuation(beta_next)
        betas[t] = beta
        beta_next = beta
    first_q = shaped_probs(table[start_code : start_code + 1], shaping, first_step=True)[0]
    state = language.state
    first = np.zeros(v)
    first[0] = first_q[0] * end_weight(prefix_len)[state]
    if beta_next is not None:
        codes = (start_code % tail) * v + np.arange(v)
        first[1:] = first_q[1:] * beta_next[codes, delta[state]][1:]
    return Backward(q, betas, first, start_code)


def draw_exact(
    backward: Backward, table: np.ndarray, language: Language, alphabet: str, keys: StreamKeys
) -> Sampled:
    """One name per stream key from the exact conditional; draw t of a row is uniforms(seed, row, t),
    as for unconstrained sampling. Log-probability sums are the UNSHAPED model's, end included."""
    contexts, v = table.shape
    tail = contexts // v
    delta, accepting = language.dfa.delta, language.dfa.accepting
    prefix_len, steps = len(language.prefix), language.steps
    n = len(keys.seeds)
    ids = np.zeros((n, steps + 1), dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    sums = np.zeros(n)
    rows = np.arange(n)
    codes = np.full(n, backward.start_code, dtype=np.int64)
    states = np.full(n, language.state, dtype=np.int64)
    letters = np.arange(v)[None, :]
    first_cdf = np.cumsum(backward.first)
    first_cdf /= first_cdf[-1]
    for t in range(steps + 1):
        draws = uniforms(keys.seeds[rows], keys.rows[rows], t)
        if t == 0:
            cdf = np.broadcast_to(first_cdf, (len(rows), v))
        else:
            weights = backward.q[codes].copy()
            letters_now = prefix_len + t
            weights[:, 0] *= accepting[states] & (language.lo <= letters_now <= language.hi)
            if t < steps:
                nxt = (codes % tail)[:, None] * v + letters
                weights[:, 1:] *= backward.betas[t + 1][nxt, delta[states]][:, 1:]
            else:
                weights[:, 1:] = 0.0
            cdf = np.cumsum(weights, axis=1)
            cdf /= cdf[:, -1:]
        chosen = (cdf < draws[:, None]).argmin(axis=1)
        sums[rows] += table[codes, chosen]
        ids[rows, t] = chosen
        going = chosen != 0
        lengths[rows[~going]] = t
        rows, codes, states, chosen = rows[going], codes[going], states[going], chosen[going]
        if not len(rows):
            break
        codes = (codes * v + chosen) % contexts
        states = delta[states, chosen]
    return Sampled(decode_rows(alphabet, ids, lengths), sums.tolist(), [False] * n)


class BackwardCache:
    """Backward passes by key, least recently used dropped past `max_bytes` (one pass larger
    than the bound is computed for its request and not kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Backward] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Backward | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: Backward) -> None:
        with self._lock:
            if key in self._entries or entry.nbytes > self.max_bytes:
                return
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes
