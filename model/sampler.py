"""Sampling names by inverse-CDF draws, two implementations of one procedure.

For a draw u in (0, 1] the next id is the first whose cumulative (shaped) probability reaches u.
A row ends at the end token (id 0, not counted) or after `steps` ids. Each row also sums the
UNSHAPED model's log-probability of every prediction, the end token included (also for a row cut
at `steps`), so a name's loss comes with it, equal to what `word_losses` would say.

- `model.kernels.sample_table`: a compiled row-by-row loop over the context table (all the
  model's distributions, precomputed): microseconds for one name, millions of names a second.
- `sample_forward`: all rows advance together, one batched forward pass per character position,
  for models too big for a table.
Row r of a call draws from its own random stream (`model.kernels`), so both give the same names
for the same seed; the same seed and request always give the same names.
"""

from __future__ import annotations

import numpy as np

from model.distributions import ForwardPass, cdf_from_log_probs
from model.kernels import draw_uniforms, row_states


def sample_forward(
    source: ForwardPass,
    n: int,
    context: list[int],
    steps: int,
    seed: np.uint64,
    temperature: float = 1.0,
    top_k: int | None = None,
    forbid_end_first: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids[n, steps], lengths[n] and summed log-probabilities[n], as `kernels.sample_table`."""
    ids = np.zeros((n, steps), dtype=np.int64)
    lengths = np.full(n, steps, dtype=np.int64)
    sums = np.zeros(n)
    rows = np.arange(n)
    states = row_states(seed, rows)
    contexts = np.array([context], dtype=np.int64)  # one row: every name shares the first context
    for t in range(steps):
        log_probs = source.log_probs(contexts)
        forbid = 0 if t == 0 and forbid_end_first else None
        cdf = cdf_from_log_probs(log_probs, temperature, top_k, forbid)
        nxt = (cdf < draw_uniforms(states)[:, None]).sum(axis=1)  # bisect_left, row by row
        if t == 0:
            log_probs, contexts = np.repeat(log_probs, n, axis=0), np.repeat(contexts, n, axis=0)
        sums[rows] += log_probs[np.arange(len(rows)), nxt]
        ids[rows, t] = nxt
        going = nxt != 0
        lengths[rows[~going]] = t
        rows, states, nxt = rows[going], states[going], nxt[going]
        if not len(rows):
            break
        contexts = np.concatenate([contexts[going, 1:], nxt[:, None]], axis=1)
    else:  # rows cut at `steps`: score the end token too
        sums[rows] += source.log_probs(contexts)[:, 0]
    return ids, lengths, sums


def decode_rows(alphabet: str, ids: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Rows of ids to strings in one vectorised step (UTF-32 keeps every character 4 bytes)."""
    width = ids.shape[1]
    if width == 0:
        return [""] * len(ids)
    code_points = np.frombuffer(alphabet.encode("utf-32-le"), dtype=np.uint32)
    text = code_points[ids].tobytes().decode("utf-32-le")
    return [text[i * width : i * width + length] for i, length in enumerate(lengths.tolist())]
