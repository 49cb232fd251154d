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
  operations over the unfinished rows of any `NextCharSource` (forwarding only rows still going),
  at most `knobs.FORWARD_CHUNK_ROWS` at once, a waiting row taking the place of an ended one.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

import numpy as np

from model.engine import cancel, knobs
from model.engine.shaping import Shaping
from model.engine.sources import ContextTable, NextCharSource, State
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
    """Draw one name per stream key after `prefix`, with the implementation that suits the size."""
    if isinstance(source, ContextTable) and len(keys.seeds) <= knobs.PYTHON_SAMPLING_MAX_N:
        return sample_rows_python(source, alphabet, keys, prefix, steps, shaping)
    return sample_rows_vectorised(source, alphabet, keys, prefix, steps, shaping)


def leaves_one_name(source: NextCharSource, prefix: list[int], steps: int, shaping: Shaping) -> bool:
    """Whether `shaping` leaves one name after `prefix` (at most `steps` ids): exactly one id of
    positive shaped probability at every step of its one path. Temperature 0 always does; top_k = 1
    and a top_p below the likeliest id's share usually do; a small temperature only where every
    other id underflows to 0 (0.01 does not, on the committed models). Then every draw is that name,
    and one draw says all that more would."""
    if shaping.plain:  # the model's own distribution: every id positive
        return False
    state = source.start(prefix)
    for t in range(steps + 1):
        cancel.charge(source.step_seconds(len(prefix) + t + 2))
        cdf = source.cdf(state, shaping, first_step=t == 0)[0]
        positive = np.flatnonzero(np.diff(cdf, prepend=0.0) > 0)
        if len(positive) != 1:
            return False
        if positive[0] == BOUNDARY_ID:
            break
        state = source.advance(state, positive)
    return True


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


class _Drawn(NamedTuple):
    """What the vectorised sampler writes per row: its ids, length, log-probability sum and cut."""

    ids: np.ndarray  # int64[n, steps]
    lengths: np.ndarray
    sums: np.ndarray
    truncated: np.ndarray


class _Waiting(NamedTuple):
    """Rows still going after the opening: each with its state's row in the prefix table (the
    prefix before its last drawn id; -1: the start), that id, its log-probability sum, and the
    step of its next draw."""

    rows: np.ndarray
    table_rows: np.ndarray
    last_ids: np.ndarray
    sums: np.ndarray
    next_steps: np.ndarray


def sample_rows_vectorised(
    source: NextCharSource, alphabet: str, keys: StreamKeys, prefix: list[int], steps: int, shaping: Shaping
) -> Sampled:
    """All rows advance together, one character a step, as array operations, in two phases.

    The opening: while a row's prefix is in the source's prefix table (`NextCharSource.table_rows`),
    its next distribution is a lookup, so these draws are made for every row at once with no
    network step. The pool: the rows still going then advance together,
    at most `knobs.FORWARD_CHUNK_ROWS` at once (a source whose rows are independent: all), each
    step forwarding only the rows still going. A row that ends frees its place: where the source
    can put states into places (`NextCharSource.refillable`), the next waiting row takes it, so the
    network steps run on full batches; else the waiting rows start once the pool is empty."""
    n = len(keys.seeds)
    out = _Drawn(
        np.zeros((n, steps), dtype=np.int64), np.full(n, steps), np.zeros(n), np.zeros(n, dtype=bool)
    )
    start = source.start(prefix)  # one row: every name shares the first distribution
    if steps == 0:
        out.sums[:] = source.log_probs(start)[0, BOUNDARY_ID]
        out.truncated[:] = True
        return Sampled([""] * n, out.sums.tolist(), out.truncated.tolist())
    horizon = min(steps + 1, knobs.DRAW_HORIZON)  # draws hashed up front; later ones when reached
    draws = uniforms(keys.seeds[:, None], keys.rows[:, None], np.arange(horizon, dtype=np.uint64)[None, :])
    opening = min(source.tabled_steps(prefix, likeliest=True), steps - 1)  # draws looked up, at most
    waiting = _draw_opening(source, start, draws, prefix, opening, shaping, out)
    _draw_in_pool(source, start, keys, draws, prefix, opening, shaping, waiting, out)
    return Sampled(decode_rows(alphabet, out.ids, out.lengths), out.sums.tolist(), out.truncated.tolist())


def _draw_opening(
    source: NextCharSource,
    start: State,
    draws: np.ndarray,
    prefix: list[int],
    opening: int,
    shaping: Shaping,
    out: _Drawn,
) -> _Waiting:
    """Draws 0 .. `opening` of every row, from the start's and the prefix table's distributions:
    a row leaves for the pool once its prefix is not in the table, or after draw `opening`."""
    n = len(draws)
    rows = np.arange(n)
    codes = np.full(n, source.prefix_code(prefix) if opening else 0, dtype=np.int64)
    at = np.full(n, source.table_rows(len(prefix), codes[:1])[0] if opening else -1)  # table rows
    sums = np.zeros(n)  # the log-probability sums of the rows still going, in `rows` order
    leaving = [(rows[:0], at[:0], codes[:0], sums[:0], rows[:0])]  # each step's leavers, from none
    for t in range(opening + 1):
        cancel.charge(len(rows) * source.step_seconds(len(prefix) + t + 2))
        if t == 0:
            log_probs = source.log_probs(start)
            nxt = (source.cdf(start, shaping, first_step=True) < draws[:, :1]).argmin(axis=1)
            sums += log_probs[0, nxt]
        else:
            log_probs = source.tabled_log_probs(at)
            nxt = (source.tabled_cdf(at, shaping) < draws[rows, t, None]).argmin(axis=1)
            sums += log_probs[np.arange(len(rows)), nxt]
        out.ids[rows, t] = nxt
        going = nxt != BOUNDARY_ID
        if not going.all():
            out.lengths[rows[~going]], out.sums[rows[~going]] = t, sums[~going]
        if t < opening:
            codes = codes * source.vocab_size + nxt
            inside = source.table_rows(len(prefix) + t + 1, codes)
            stay = going & (inside >= 0)
            leave = going & ~stay
        else:
            stay, leave = np.zeros_like(going), going
        if leave.any():
            steps_next = np.full(int(leave.sum()), t + 1)
            leaving.append((rows[leave], at[leave], nxt[leave], sums[leave], steps_next))
        if t < opening:
            rows, codes, at, sums = rows[stay], codes[stay], inside[stay], sums[stay]
    return _Waiting(*(np.concatenate(column) for column in zip(*leaving, strict=True)))


def _draw_in_pool(
    source: NextCharSource,
    start: State,
    keys: StreamKeys,
    draws: np.ndarray,
    prefix: list[int],
    opening: int,
    shaping: Shaping,
    waiting: _Waiting,
    out: _Drawn,
) -> None:
    """The waiting rows' other draws, in a pool of places: each holds a row, its state before
    reading its last drawn id (`pending`) and the step of its next draw."""
    steps, horizon = out.ids.shape[1], draws.shape[1]

    def entering(first: int, count: int) -> State:  # the states of waiting rows first.. first+count-1
        if opening:  # every waiting row's prefix is in the table
            return source.tabled_state(waiting.table_rows[first : first + count])
        return source.keep(start, np.zeros(count, dtype=np.int64))

    most = len(draws) if source.rows_independent else knobs.FORWARD_CHUNK_ROWS
    refill = source.refillable
    taken = 0
    places = np.zeros(0, dtype=np.int64)  # the row in each place
    while taken < len(waiting.rows) or len(places):
        if not len(places):  # an empty pool: the next waiting rows start together
            count = min(most, len(waiting.rows) - taken)
            state, places = entering(taken, count), waiting.rows[taken : taken + count]
            pending, sums = (
                waiting.last_ids[taken : taken + count],
                waiting.sums[taken : taken + count].copy(),
            )
            next_step = waiting.next_steps[taken : taken + count].copy()
            last = int(next_step.max())  # kept as a Python int
            taken += count
        cancel.charge(len(places) * source.step_seconds(len(prefix) + last + 1))
        state = source.advance(state, pending)
        if last < horizon:
            u = draws[places, next_step]
        else:
            u = uniforms(keys.seeds[places], keys.rows[places], next_step.astype(np.uint64))
        pending = (source.cdf(state, shaping, first_step=False) < u[:, None]).argmin(axis=1)
        if last < steps:
            out.ids[places, next_step] = pending
        else:  # rows with `steps` ids score the end token and draw nothing
            cut = next_step == steps
            pending[cut] = BOUNDARY_ID
            out.ids[places[~cut], next_step[~cut]] = pending[~cut]
            out.truncated[places[cut]] = True
        sums += source.log_prob(state, pending)
        going = pending != BOUNDARY_ID
        if going.all():
            next_step += 1
            last += 1
            continue
        ended = np.flatnonzero(~going)
        out.lengths[places[ended]], out.sums[places[ended]] = next_step[ended], sums[ended]
        next_step += 1
        count = min(len(ended), len(waiting.rows) - taken) if refill else 0
        if count:  # waiting rows take the places of ended ones
            filled, ended = ended[:count], ended[count:]
            state = source.put(state, filled, entering(taken, count))
            places = places.copy()  # (a view of `waiting.rows`)
            places[filled] = waiting.rows[taken : taken + count]
            pending[filled] = waiting.last_ids[taken : taken + count]
            sums[filled] = waiting.sums[taken : taken + count]
            next_step[filled] = waiting.next_steps[taken : taken + count]
            going[filled] = True
            taken += count
        if len(ended):  # forward only the others
            kept = np.flatnonzero(going)
            places, pending, sums, next_step = places[kept], pending[kept], sums[kept], next_step[kept]
            if len(kept):
                state = source.keep(state, kept)
        last = int(next_step.max(initial=0))


def decode_rows(alphabet: str, ids: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Rows of ids to strings in one vectorised step (UTF-32 keeps every character 4 bytes)."""
    width = ids.shape[1]
    if width == 0:
        return [""] * len(ids)
    code_points = np.frombuffer(alphabet.encode("utf-32-le"), dtype=np.uint32)
    text = code_points[ids].tobytes().decode("utf-32-le")
    return [text[i * width : i * width + length] for i, length in enumerate(lengths.tolist())]
