"""Sampling names by inverse-CDF draws: one procedure, implemented for small and for large n.

For a draw u in (0, 1] the next id is the first whose cumulative (shaped) probability reaches u
(bisect_left). A row ends at the end token (id 0, not counted) or after `steps` ids (then it is
truncated). Each row also sums the UNSHAPED model's log-probability of every prediction, the end
token included (also for a truncated row), so a name's loss comes with it, equal to what
`LanguageModel.word_losses` says.

Draw t of a row is `uniforms(seed, r, t)`, a counter-based hash of the row's stream key (the
request's seed and the row's index in that request), so it does not depend on the order rows
and steps are visited in, nor on which other requests' rows share the call: every
implementation, alone or batched, returns the same names:
- `sample_rows_python`: one name after the other, reading a table's CDF rows as Python lists;
  no per-call overhead, so a few names cost microseconds;
- `sample_rows_vectorised`: all rows advance together, one position per step, as array
  operations over the unfinished rows of any `NextCharSource` (forwarding only rows still going).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

import numpy as np

from model.engine import cancel, knobs
from model.engine.shaping import Shaping
from model.engine.sources import ContextTable, NextCharSource
from model.hashing import GOLDEN_GAMMA, splitmix64
from model.vocab import BOUNDARY_ID

_MAX_STEPS = np.uint64(1 << 16)  # draws per row the counter leaves room for
_ONE, _S11 = np.uint64(1), np.uint64(11)


class StreamKeys(NamedTuple):
    """Each row's random stream: its request's seed and its index within that request."""

    seeds: np.ndarray  # uint64[n]
    rows: np.ndarray  # uint64[n]

    @classmethod
    def of_requests(cls, requests: list[tuple[int, int]]) -> StreamKeys:
        """Keys for the rows of several (n, seed) requests, one after the other."""
        sizes = np.array([n for n, _ in requests], dtype=np.int64)
        seeds = np.repeat(np.array([seed for _, seed in requests], dtype=np.uint64), sizes)
        firsts = np.repeat(np.cumsum(sizes) - sizes, sizes)  # each row's request's first row
        return cls(seeds, (np.arange(len(seeds)) - firsts).astype(np.uint64))


def uniforms(seeds: np.ndarray, rows: np.ndarray, step: np.ndarray | int) -> np.ndarray:
    """Draws in (0, 1] for (stream, step) pairs: the SplitMix64 finaliser of a per-draw counter."""
    counter = rows * _MAX_STEPS + np.asarray(step, dtype=np.uint64)
    z = splitmix64(seeds + (counter + _ONE) * GOLDEN_GAMMA)
    return 1.0 - (z >> _S11).astype(np.float64) * 2.0**-53


class Sampled(NamedTuple):
    """Each row's drawn characters, summed log-probabilities, and whether it was cut at `steps`."""

    texts: list[str]
    log_prob_sums: list[float]
    truncated: list[bool]


def sample_rows(
    source: NextCharSource, alphabet: str, keys: StreamKeys, prefix: list[int], steps: int, shaping: Shaping
) -> Sampled:
    """Draw one name per stream key after `prefix`, with the implementation that suits the size.
    A forward pass draws at most `knobs.FORWARD_CHUNK_ROWS` rows at once (its state grows with
    the rows: the transformer's key/value cache is 33 KB a row); each row's draws depend only on its
    key, so the passes draw what one would."""
    if isinstance(source, ContextTable) and len(keys.seeds) <= knobs.PYTHON_SAMPLING_MAX_N:
        return sample_rows_python(source, alphabet, keys, prefix, steps, shaping)
    most = len(keys.seeds) if source.rows_independent else knobs.FORWARD_CHUNK_ROWS
    if len(keys.seeds) <= most:
        return sample_rows_vectorised(source, alphabet, keys, prefix, steps, shaping)
    parts = [
        sample_rows_vectorised(
            source,
            alphabet,
            StreamKeys(keys.seeds[i : i + most], keys.rows[i : i + most]),
            prefix,
            steps,
            shaping,
        )
        for i in range(0, len(keys.seeds), most)
    ]
    return Sampled(*([x for part in parts for x in getattr(part, field)] for field in Sampled._fields))


def sample_rows_python(
    table: ContextTable, alphabet: str, keys: StreamKeys, prefix: list[int], steps: int, shaping: Shaping
) -> Sampled:
    """Names one after the other, reading the table's rows as Python lists."""
    shaped: dict[int, list[float]] = {}  # with temperature/top-k/top-p: the shaped rows met so far

    def cdf_row(code: int) -> list[float]:
        if shaping.plain:
            return table.cdf_rows[code]
        if code not in shaped:
            shaped[code] = table.shaped_row(code, shaping)
        return shaped[code]

    start = int(table.start(prefix)[0])
    first = table.first_cdf_row(start, shaping)
    step_ids = np.arange(steps, dtype=np.uint64)[None, :]
    draws = uniforms(keys.seeds[:, None], keys.rows[:, None], step_ids).tolist()
    log_prob, next_code = table.table.item, table.next_code
    texts, sums, truncated = [], [], []
    for row_draws in draws:
        code, cdf, lp, chars = start, first, 0.0, []
        for u in row_draws:
            idx = bisect_left(cdf, u)
            lp += log_prob(code, idx)
            if idx == BOUNDARY_ID:
                break
            chars.append(alphabet[idx])
            code = next_code(code, idx)
            cdf = cdf_row(code)
        else:  # cut at `steps`: score the end token too
            lp += log_prob(code, BOUNDARY_ID)
        texts.append("".join(chars))
        sums.append(lp)
        truncated.append(len(chars) == steps)
    return Sampled(texts, sums, truncated)


def sample_rows_vectorised(
    source: NextCharSource, alphabet: str, keys: StreamKeys, prefix: list[int], steps: int, shaping: Shaping
) -> Sampled:
    """All rows advance together, one character position per step, as array operations. While a
    row's prefix is shorter than the source's prefix table (`NextCharSource.table_levels`), its
    next state is looked up there instead of computed."""
    n = len(keys.seeds)
    ids = np.zeros((n, steps), dtype=np.int64)
    lengths = np.full(n, steps, dtype=np.int64)
    sums = np.zeros(n)
    rows = np.arange(n)
    state = source.start(prefix)  # one row: every name shares the first distribution
    tabled_steps = source.tabled_steps(prefix)
    codes = np.full(n, source.prefix_code(prefix) if tabled_steps else 0, dtype=np.int64)
    live_sums = np.zeros(n)  # the log-probability sums of the rows still going, in `rows` order
    if steps == 0:
        state = source.keep(state, np.zeros(n, dtype=np.int64))
    for t in range(steps):
        cancel.charge(len(rows) * source.step_seconds(len(prefix) + t + 2))
        if t % knobs.DRAW_BLOCK == 0:  # the next block of draws for the rows still going
            block_steps = np.arange(t, min(t + knobs.DRAW_BLOCK, steps), dtype=np.uint64)
            block = uniforms(keys.seeds[rows, None], keys.rows[rows, None], block_steps[None, :]).ravel()
            in_block = np.arange(len(rows)) * len(block_steps)
        cdf = source.cdf(state, shaping, first_step=t == 0)
        draws = block.take(in_block + t % knobs.DRAW_BLOCK)
        nxt = (cdf < draws[:, None]).argmin(axis=1)  # bisect_left, row by row (the last column is 1)
        if t == 0:  # every row read the start's one distribution
            live_sums += source.log_probs(state)[0, nxt]
        else:
            live_sums += source.log_prob(state, nxt)
        ids[rows, t] = nxt
        going = nxt != BOUNDARY_ID
        if not going.all():  # some rows ended: forward only the others
            ended = rows[~going]
            lengths[ended], sums[ended] = t, live_sums[~going]
            rows, in_block, codes, nxt = rows[going], in_block[going], codes[going], nxt[going]
            live_sums = live_sums[going]
            if not len(rows):
                break
            if t > 0:
                state = source.keep(state, np.flatnonzero(going))
        if t < tabled_steps:
            codes = codes * source.vocab_size + nxt
            state = source.tabled(len(prefix) + t + 1, codes)
        else:
            if t == 0:
                state = source.keep(state, np.zeros(len(rows), dtype=np.int64))
            state = source.advance(state, nxt)
    else:  # rows cut at `steps`: score the end token too (state holds their last prefix)
        live_sums += source.log_prob(state, np.zeros(len(rows), dtype=np.int64))
    sums[rows] = live_sums
    truncated = np.zeros(n, dtype=bool)
    truncated[rows] = True
    return Sampled(decode_rows(alphabet, ids, lengths), sums.tolist(), truncated.tolist())


def decode_rows(alphabet: str, ids: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Rows of ids to strings in one vectorised step (UTF-32 keeps every character 4 bytes)."""
    width = ids.shape[1]
    if width == 0:
        return [""] * len(ids)
    code_points = np.frombuffer(alphabet.encode("utf-32-le"), dtype=np.uint32)
    text = code_points[ids].tobytes().decode("utf-32-le")
    return [text[i * width : i * width + length] for i, length in enumerate(lengths.tolist())]
