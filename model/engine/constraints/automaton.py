"""Deterministic automata over a model's alphabet: the one form every constraint compiles to.

A `Dfa` is complete: state 0 is the dead state (it loops to itself and never accepts), and
`delta[s, j]` is the state after reading character id j (ids 1..V-1; column 0, the boundary '.',
leads to the dead state: a name never holds it). Builders here cover the string constraints
(starts/ends with, contains, excludes); `model.engine.constraints.regex` builds regex automata.
Products, minimisation and the length-aware emptiness test work on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEAD = 0
MAX_PRODUCT_STATES = 20_000  # reachable pairs a product may build before it gives up


class AutomatonTooLarge(ValueError):
    """A product of automata grew past `MAX_PRODUCT_STATES` reachable states."""


@dataclass(frozen=True)
class Dfa:
    """delta: int32[states, V]; accepting: bool[states]; start: the state before any character."""

    delta: np.ndarray
    accepting: np.ndarray
    start: int

    @property
    def states(self) -> int:
        return len(self.accepting)

    def run(self, ids: list[int], state: int | None = None) -> int:
        """The state after reading `ids` from `state` (the start by default)."""
        s = self.start if state is None else state
        for j in ids:
            s = int(self.delta[s, j])
        return s

    def accepts(self, ids: list[int]) -> bool:
        return bool(self.accepting[self.run(ids)])


def from_table(rows: list[list[int]], accepting: list[bool], start: int) -> Dfa:
    """A Dfa from Python rows (state 0 must be the dead state)."""
    delta = np.asarray(rows, dtype=np.int32)
    delta[:, 0] = DEAD
    return Dfa(delta, np.asarray(accepting, dtype=bool), start)


def _kmp(word: list[int], vocab_size: int) -> list[list[int]]:
    """KMP transitions over states 0..len(word) (the longest suffix read that starts `word`),
    as rows for every id; from the full match, the longest proper border continues."""
    m = len(word)
    rows = [[0] * vocab_size for _ in range(m + 1)]
    border = 0  # the state the longest proper border of word[:q] leads to
    for q in range(m + 1):
        for j in range(1, vocab_size):
            rows[q][j] = q + 1 if q < m and word[q] == j else (rows[border][j] if q else 0)
        if 0 < q < m:
            border = rows[border][word[q]]
    return rows


def _shift(rows: list[list[int]]) -> list[list[int]]:
    """Rows over states 0..m renumbered 1..m+1 behind a new dead state 0."""
    return [[DEAD] * len(rows[0])] + [[s + 1 for s in row] for row in rows]


def ends_with(word: list[int], vocab_size: int) -> Dfa:
    """Names whose last characters are `word`."""
    rows = _shift(_kmp(word, vocab_size))
    return from_table(rows, [False] + [q == len(word) for q in range(len(word) + 1)], 1)


def contains(word: list[int], vocab_size: int) -> Dfa:
    """Names in which `word` occurs: the full match is absorbing and accepting."""
    rows = _shift(_kmp(word, vocab_size))
    m = len(word)
    rows[m + 1] = [m + 1] * vocab_size
    return from_table(rows, [False] + [q == m for q in range(m + 1)], 1)


def excludes(word: list[int], vocab_size: int) -> Dfa:
    """Names in which `word` never occurs: reaching the full match is death."""
    rows = _shift(_kmp(word, vocab_size))
    m = len(word)
    rows = [[DEAD if s == m + 1 else s for s in row] for row in rows]
    rows[m + 1] = [DEAD] * vocab_size
    return from_table(rows, [False] + [q < m for q in range(m + 1)], 1)


def starts_with(word: list[int], vocab_size: int) -> Dfa:
    """Names that begin with `word`: states 1..m+1 count the characters matched so far."""
    m = len(word)
    rows = [[DEAD] * vocab_size]
    for q in range(m):
        row = [DEAD] * vocab_size
        row[word[q]] = q + 2
        rows.append(row)
    rows.append([m + 1] * vocab_size)
    return from_table(rows, [False] * (m + 1) + [True], 1)


def anything(vocab_size: int) -> Dfa:
    """Every name."""
    return from_table([[DEAD] * vocab_size, [1] * vocab_size], [False, True], 1)


def product(a: Dfa, b: Dfa) -> Dfa:
    """The intersection of two languages: the reachable pairs of states, dead pairs merged into 0."""
    vocab_size = a.delta.shape[1]
    index = {(DEAD, DEAD): DEAD}
    pairs = [(DEAD, DEAD)]
    start = (a.start, b.start)
    if DEAD in start:
        return from_table([[DEAD] * vocab_size], [False], DEAD)
    index[start] = 1
    pairs.append(start)
    rows: list[list[int]] = [[DEAD] * vocab_size]
    i = 1
    while i < len(pairs):
        sa, sb = pairs[i]
        row = [DEAD] * vocab_size
        for j in range(1, vocab_size):
            nxt = (int(a.delta[sa, j]), int(b.delta[sb, j]))
            if DEAD in nxt:
                continue
            if nxt not in index:
                if len(pairs) >= MAX_PRODUCT_STATES:
                    raise AutomatonTooLarge(f"more than {MAX_PRODUCT_STATES} automaton states")
                index[nxt] = len(pairs)
                pairs.append(nxt)
            row[j] = index[nxt]
        rows.append(row)
        i += 1
    accepting = [False] + [bool(a.accepting[sa] and b.accepting[sb]) for sa, sb in pairs[1:]]
    return from_table(rows, accepting, 1)


def co_reachable(dfa: Dfa) -> np.ndarray:
    """bool[states]: whether some accepting state can be reached (at any length)."""
    alive = dfa.accepting.copy()
    while True:
        grown = alive | alive[dfa.delta[:, 1:]].any(axis=1)
        grown[DEAD] = False
        if (grown == alive).all():
            return alive
        alive = grown


def minimise(dfa: Dfa) -> Dfa:
    """The minimal complete Dfa of the same language (Moore's partition refinement), reachable
    states only, with every state that cannot reach acceptance merged into the dead state 0."""
    alive = co_reachable(dfa)
    delta = np.where(alive[dfa.delta], dfa.delta, DEAD)
    delta[:, 0] = DEAD
    if not alive[dfa.start]:
        return from_table([[DEAD] * dfa.delta.shape[1]], [False], DEAD)
    # classes: dead = 0; others by acceptance first, refined by their successors' classes
    classes = np.where(alive, np.where(dfa.accepting, 2, 1), 0)
    while True:
        signature = np.concatenate([classes[:, None], classes[delta[:, 1:]]], axis=1)
        signature[~alive] = 0
        _, refined = np.unique(signature, axis=0, return_inverse=True)
        refined = refined.ravel()
        if len(np.unique(refined)) == len(np.unique(classes)):
            break
        classes = refined
    # renumber: dead class -> 0, the rest in order of first reach from the start (BFS)
    order = {int(classes[DEAD]): DEAD}
    queue = [int(dfa.start)]
    representative: dict[int, int] = {}
    while queue:
        s = queue.pop(0)
        c = int(classes[s])
        if c in order:
            continue
        order[c] = len(order)
        representative[order[c]] = s
        for j in range(1, delta.shape[1]):
            t = int(delta[s, j])
            if int(classes[t]) not in order:
                queue.append(t)
    size = len(order)
    rows = [[DEAD] * delta.shape[1] for _ in range(size)]
    accepting = [False] * size
    for new, s in representative.items():
        rows[new] = [order[int(classes[int(t)])] for t in delta[s]]
        accepting[new] = bool(dfa.accepting[s])
    return from_table(rows, accepting, order[int(classes[dfa.start])])


def reachable_lengths(dfa: Dfa, lo: int, hi: int) -> np.ndarray:
    """bool[hi + 1, states]: `out[n, s]` says whether from state s, having read n characters, an
    accepting state is reachable at some total length in [lo, hi]."""
    out = np.zeros((hi + 1, dfa.states), dtype=bool)
    out[hi] = dfa.accepting & (hi >= lo)
    for n in range(hi - 1, -1, -1):
        out[n] = (dfa.accepting & (n >= lo)) | out[n + 1][dfa.delta[:, 1:]].any(axis=1)
    out[:, DEAD] = False
    return out
