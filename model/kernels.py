"""Compiled (numba) inner loops: the per-character work of sampling from the context table.

Random numbers: every row r of a call has its own SplitMix64 stream, started from the call's
seed and r, so a row's draws do not depend on the order rows are visited in: the compiled
row-by-row loop here and the step-by-step vectorised loop over the forward pass (which draws
through `draw_uniforms`) give the same names for the same seed.
"""

from __future__ import annotations

import numba
import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
ROW_STRIDE = np.uint64(0xD1B54A32D192ED03)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
UNIT = 2.0**-53


@numba.njit(cache=True, inline="always")
def _uniform(state: np.uint64) -> tuple[np.uint64, float]:
    """Advance a SplitMix64 state; return it and a draw in (0, 1]."""
    state = state + GAMMA
    z = state
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    z = z ^ (z >> np.uint64(31))
    return state, 1.0 - float(z >> np.uint64(11)) * UNIT


@numba.njit(cache=True)
def row_states(seed: np.uint64, rows: np.ndarray) -> np.ndarray:
    """The starting stream state of each row."""
    out = np.empty(len(rows), dtype=np.uint64)
    for i in range(len(rows)):
        out[i] = seed + np.uint64(rows[i] + 1) * ROW_STRIDE
    return out


@numba.njit(cache=True)
def draw_uniforms(states: np.ndarray) -> np.ndarray:
    """One draw per stream, advancing `states` in place."""
    out = np.empty(len(states))
    for i in range(len(states)):
        states[i], out[i] = _uniform(states[i])
    return out


@numba.njit(cache=True)
def _shaped_cdf(log_probs: np.ndarray, temperature: float, top_k: int, forbid_end: bool, out: np.ndarray):
    """CDF of softmax(log_probs / temperature) over the top_k entries (0: all), '.' excluded on
    request; the last entry is exactly 1 (as model.distributions.cdf_from_log_probs)."""
    v = len(log_probs)
    scaled = log_probs / temperature
    if forbid_end:
        scaled[0] = -np.inf
    if 0 < top_k < v:
        kth = np.sort(scaled)[v - top_k]
        for j in range(v):
            if scaled[j] < kth:
                scaled[j] = -np.inf
    peak = scaled.max()
    total = 0.0
    for j in range(v):
        total += np.exp(scaled[j] - peak)
        out[j] = total
    for j in range(v):
        out[j] /= total


@numba.njit(cache=True)
def sample_table(
    log_table: np.ndarray,
    cdf_table: np.ndarray,
    start: int,
    n: int,
    steps: int,
    seed: np.uint64,
    temperature: float,
    top_k: int,
    forbid_end_first: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample n rows of up to `steps` ids after the context coded `start`.

    Returns ids[n, steps], lengths[n] (the end token not counted) and each row's summed
    UNSHAPED log-probability of its ids and the end token (also when cut at `steps`).
    """
    contexts, v = log_table.shape
    plain = temperature == 1.0 and top_k == 0
    shaped = np.empty((contexts, v)) if not plain else cdf_table[:1]
    done = np.zeros(contexts, dtype=np.bool_)
    first = np.empty(v)
    if plain and not forbid_end_first:
        first[:] = cdf_table[start]
    else:
        _shaped_cdf(log_table[start].copy(), temperature, top_k, forbid_end_first, first)
    ids = np.zeros((n, steps), dtype=np.int64)
    lengths = np.full(n, steps, dtype=np.int64)
    sums = np.zeros(n)
    states = row_states(seed, np.arange(n))
    for r in range(n):
        state = states[r]
        code = start
        lp = 0.0
        ended = False
        for t in range(steps):
            if t == 0:
                cdf = first
            elif plain:
                cdf = cdf_table[code]
            else:
                if not done[code]:
                    _shaped_cdf(log_table[code].copy(), temperature, top_k, False, shaped[code])
                    done[code] = True
                cdf = shaped[code]
            state, u = _uniform(state)
            idx = 0
            while cdf[idx] < u:  # bisect_left; cdf ends at exactly 1 >= u
                idx += 1
            lp += log_table[code, idx]
            if idx == 0:
                lengths[r] = t
                ended = True
                break
            ids[r, t] = idx
            code = (code * v + idx) % contexts
        if not ended:
            lp += log_table[code, 0]
        sums[r] = lp
    return ids, lengths, sums
