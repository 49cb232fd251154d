"""Where next-character distributions come from: one interface, two implementations.

`ForwardSource` runs any family's forward pass (`start`/`step`/`keep`, `sequence_logits`).
`ContextTable` is an optional accelerator for window families: with block size 3 and 27
characters there are only 27^3 = 19,683 contexts, so every next-character distribution is
computed once, exactly, by the forward pass at load time, and sampling and scoring become lookups.
Both give the same numbers: the table IS the forward pass's output.

A source's state stands for some rows' prefixes ('.' + prefix + what was drawn so far);
`log_probs(state)` is each row's next-character distribution. The sampler (`model.engine.sampler`)
and the language model only use the methods of `NextCharSource`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

from model.engine import cancel, knobs
from model.engine.prefix_table import PrefixTable, build_prefix_table, plain_cdf
from model.engine.shaping import Shaping
from model.families import CharModel
from model.vocab import BOUNDARY_ID

State = Any


class NextCharSource:
    """The interface, with the parts both implementations share."""

    vocab_size: int
    # True when a row's numbers never depend on which other rows share a call (a table lookup):
    # then requests may be sampled together and still get exactly the names they get alone.
    rows_independent: bool = False
    # True when a step costs microseconds, not a torch call's overhead (a table, NumPy steps).
    cheap_steps: bool = False

    def start(self, prefix: list[int]) -> State:
        """One row's state after reading '.' and the ids of `prefix`."""
        raise NotImplementedError

    def step_seconds(self, position: int) -> float:
        """About how long one row's step reading the `position`-th id takes ('.' is the first): the
        measured per-character cost (`knobs`) behind the cost bound (`model.engine.cancel`)."""
        return knobs.TABLE_SECONDS_PER_CHAR

    def log_probs(self, state: State) -> np.ndarray:
        """float64[rows, vocab]: log p(next id | each row's prefix)."""
        raise NotImplementedError

    def advance(self, state: State, ids: np.ndarray) -> State:
        """The state after each row reads its id in `ids`."""
        raise NotImplementedError

    def keep(self, state: State, rows: np.ndarray) -> State:
        """Only `rows` of the state (repeating an index repeats its row)."""
        raise NotImplementedError

    def score(self, words: list[list[int]]) -> list[np.ndarray]:
        """For each word (ids), log p of each of its characters and then of the end token."""
        raise NotImplementedError

    def table_levels(self) -> int:
        """Prefix lengths 0 to this - 1 have every prefix's state in a table (`tabled`); 0: none."""
        return 0

    def table_depth(self) -> int:
        """Prefix lengths 0 to this - 1 have states in the table: `table_levels` whole, the last
        one possibly only its likeliest prefixes (`model.engine.prefix_table`)."""
        return self.table_levels()

    def table_rows(self, length: int, codes: np.ndarray) -> np.ndarray:
        """The table's rows of the prefixes of `length` ids with these codes (`prefix_code`); -1
        for a prefix not in it."""
        raise NotImplementedError

    def tabled_state(self, rows: np.ndarray) -> State:
        """The states in these rows of the table."""
        raise NotImplementedError

    def tabled_log_probs(self, rows: np.ndarray) -> np.ndarray:
        """`log_probs(tabled_state(rows))` without gathering the rest of the states."""
        return self.log_probs(self.tabled_state(rows))

    def tabled_cdf(self, rows: np.ndarray, shaping: Shaping) -> np.ndarray:
        """`cdf(tabled_state(rows), shaping, first_step=False)`, the same bits."""
        return self.cdf_of(self.tabled_log_probs(rows), shaping, first_step=False)

    def tabled(self, length: int, codes: np.ndarray) -> State:
        """The states after '.' + the `length` ids each code stands for (length < `table_levels`)."""
        return self.tabled_state(self.table_rows(length, codes))

    def tabled_steps(self, prefix: list[int], *, likeliest: bool = False) -> int:
        """How many ids drawn after `prefix` lead to states in the table's whole levels (0: none);
        with `likeliest`, in the partial level too, where only the likeliest prefixes are (a row
        whose prefix is not there leaves the table earlier)."""
        levels = self.table_depth() if likeliest else self.table_levels()
        return max(0, levels - 1 - len(prefix))

    def prefix_code(self, ids: list[int] | np.ndarray) -> int:
        """Ids read as a base-`vocab_size` number: a prefix's row in its level of the table."""
        code = 0
        for idx in ids:
            code = code * self.vocab_size + int(idx)
        return code

    def log_prob(self, state: State, ids: np.ndarray) -> np.ndarray:
        """The unshaped log p of ids[r] for each row r."""
        return self.log_probs(state)[np.arange(len(ids)), ids]

    def cdf(self, state: State, shaping: Shaping, first_step: bool) -> np.ndarray:
        """Each row's shaped CDF (see `Shaping.cdf`)."""
        return self.cdf_of(self.log_probs(state), shaping, first_step)

    def cdf_of(self, log_probs: np.ndarray, shaping: Shaping, first_step: bool) -> np.ndarray:
        """The shaped CDF of rows of log-probabilities this source gave."""
        return shaping.cdf(log_probs, first_step)

    # True when `put` can place rows' states into places of another state (the sampler's pool).
    refillable: bool = False

    def put(self, state: State, places: np.ndarray, new: State) -> State:
        """`state` with the first len(places) rows of `new` in rows `places` (written in place:
        only for a state the caller owns, from `advance` or `keep`)."""
        raise NotImplementedError


class TorchSteps:
    """A family's own `start`/`step`/`keep` as NumPy in, NumPy out (the `NumpySteps` contract)."""

    def __init__(self, model: CharModel, device: torch.device) -> None:
        self.model, self.device = model, device

    def start(self, rows: int) -> State:
        return self.model.start(rows)

    def step(self, state: State, ids: np.ndarray) -> tuple[State, np.ndarray]:
        with torch.inference_mode():
            state, logits = self.model.step(state, torch.from_numpy(ids).to(self.device))
        return state, logits.to("cpu", torch.float64).numpy()

    def keep(self, state: State, rows: np.ndarray) -> State:
        with torch.inference_mode():
            return self.model.keep(state, torch.from_numpy(rows).to(self.device))


class PaddedSteps:
    """Steps that never run on fewer than `min_rows` rows: a state holds the real rows, then copies
    of its first row, so every BLAS call sees a batch size in its batch-invariant range (`knobs`).
    State: (the inner state, the number of real rows)."""

    def __init__(self, inner: Any, min_rows: int = knobs.PAD_MIN_ROWS) -> None:
        self.inner, self.min_rows = inner, min_rows

    def start(self, rows: int) -> State:
        return self.inner.start(max(rows, self.min_rows)), rows

    def step(self, state: State, ids: np.ndarray) -> tuple[State, np.ndarray]:
        inner, rows = state
        width = max(rows, self.min_rows)
        if width > len(ids):  # the padding rows read id 0 ('.'): any id would do
            ids = np.concatenate([ids, np.zeros(width - len(ids), dtype=ids.dtype)])
        inner, logits = self.inner.step(inner, ids)
        return (inner, rows), logits[:rows]

    def keep(self, state: State, rows: np.ndarray) -> State:
        count = len(rows)
        if count < self.min_rows:
            rows = np.concatenate([rows, np.zeros(self.min_rows - count, dtype=np.int64)])
        return self.inner.keep(state[0], rows), count

    @property
    def joinable(self) -> bool:
        return getattr(self.inner, "joinable", False)

    def put(self, state: State, places: np.ndarray, new: State) -> State:
        return self.inner.put(state[0], places, new[0]), state[1]

    def join(self, states: list[State]) -> State:
        """One state of the real rows of `states`, in order (padded again if they are too few)."""
        real = [self.inner.keep(inner, np.arange(rows)) for inner, rows in states]
        count = sum(rows for _, rows in states)
        return self.keep((self.inner.join(real), count), np.arange(count))


def state_bytes(state: State) -> int:
    """The bytes of the arrays and tensors in a (nested tuple) state."""
    if isinstance(state, tuple | list):
        return sum(state_bytes(part) for part in state)
    if isinstance(state, torch.Tensor):
        return state.element_size() * state.nelement()
    if isinstance(state, np.ndarray):
        return state.nbytes
    return 0


def log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    """float64 log-probabilities of each row of logits."""
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


class ForwardSource(NextCharSource):
    """The forward pass of any family, one batched step per call, through its NumPy steps where the
    family has them (faster for small batches), else its torch module. State: (model state,
    log-probs of the next id)."""

    def __init__(self, model: CharModel, device: torch.device) -> None:
        self.model = model
        self.vocab_size = model.config.vocab_size
        numpy_steps = model.numpy_steps() if device.type == "cpu" else None
        self.cheap_steps = numpy_steps is not None
        self.torch_steps = numpy_steps is None
        self.steps = PaddedSteps(numpy_steps or TorchSteps(model, device))
        self.parameters = sum(p.numel() for p in model.parameters())
        # The one-row state after '.' + prefix, per prefix: always computed alone, by the same rule,
        # so a cached start is bit-identical to a fresh one (safe for the seed contract).
        self._starts: dict[tuple[int, ...], State] = {}
        self.start_cache_bytes = 0  # held by `_starts`, at most knobs.START_CACHE_BYTES
        # Set once a self-test found the steps batch-invariant (`LanguageModel.pad_to`): then a
        # state computed in any batch is the state computed alone, and the prefix table may serve it.
        self.batch_invariant = False
        self._table: PrefixTable | tuple | None = None  # `_prefix_table`: () when it has none
        self._table_lock = threading.Lock()
        self._table_used = True  # `use_prefix_table`

    @property
    def min_rows(self) -> int:
        """The fewest rows a step runs on (`PaddedSteps`)."""
        return self.steps.min_rows

    @min_rows.setter
    def min_rows(self, rows: int) -> None:
        self.steps.min_rows = rows
        self._starts.clear()  # computed under the old padding
        self.start_cache_bytes = 0
        self._table = None

    def table_levels(self) -> int:
        table = self._table_in_use()
        return table.full_levels if table else 0

    def table_depth(self) -> int:
        table = self._table_in_use()
        return len(table.rows_of) if table else 0

    def _table_in_use(self) -> PrefixTable | None:
        return self._prefix_table() if self._table_used else None

    def use_prefix_table(self, on: bool) -> None:
        """Serve from the prefix table (built on first use, kept when off) or compute every step:
        the same bits."""
        self._table_used = on

    def table_rows(self, length: int, codes: np.ndarray) -> np.ndarray:
        return self._prefix_table().rows(length, codes)  # type: ignore[union-attr]

    def tabled_state(self, rows: np.ndarray) -> State:
        return self.keep(self._prefix_table().state, rows)  # type: ignore[union-attr]

    def tabled_log_probs(self, rows: np.ndarray) -> np.ndarray:
        return self._prefix_table().log_probs[rows]  # type: ignore[union-attr]

    def tabled_cdf(self, rows: np.ndarray, shaping: Shaping) -> np.ndarray:
        if shaping.plain:  # computed with the table
            return self._prefix_table().plain_cdfs[rows]  # type: ignore[union-attr]
        return super().tabled_cdf(rows, shaping)

    @property
    def refillable(self) -> bool:  # type: ignore[override]
        """Batch-invariant steps over row arrays: a row placed into any pass computes its bits
        (what the pool's refill and the prefix table rest on)."""
        return self.batch_invariant and self.steps.joinable

    def put(self, state: State, places: np.ndarray, new: State) -> State:
        state[1][places] = new[1][: len(places)]
        return self.steps.put(state[0], places, new[0]), state[1]

    def _prefix_table(self) -> PrefixTable | None:
        """The prefix table (`model.engine.prefix_table`), built on first use; None unless the
        steps are batch-invariant and can join states."""
        if self._table is not None:
            return self._table or None
        with self._table_lock:
            if self._table is None:
                rows = max(1, self.min_rows)  # a state of fewer rows holds this many (padding)
                row_bytes = state_bytes(self.keep(self.start([]), np.zeros(rows, dtype=np.int64))) // rows
                row_bytes += self.vocab_size * 8  # and its plain CDF
                self._table = (
                    build_prefix_table(self, row_bytes, knobs.PREFIX_TABLE_BYTES) if self.refillable else ()
                )
        return self._table or None

    def join(self, states: list[State]) -> State:
        """One state of the rows of `states`, in order."""
        return self.steps.join([state[0] for state in states]), np.concatenate([s[1] for s in states])

    def step_seconds(self, position: int) -> float:
        if self.cheap_steps:
            per_parameter = knobs.NUMPY_SECONDS_PER_PARAMETER
        elif next(self.model.parameters()).dtype == torch.float32:
            per_parameter = knobs.TORCH32_SECONDS_PER_PARAMETER
        else:
            per_parameter = knobs.TORCH64_SECONDS_PER_PARAMETER
        return self.parameters * per_parameter * self.model.step_positions(position)

    def has_start(self, prefix: list[int]) -> bool:
        """Whether the state after '.' + `prefix` is cached (`start` costs nothing for it)."""
        return tuple(prefix) in self._starts

    def start(self, prefix: list[int]) -> State:
        key = tuple(prefix)
        cached = self._starts.get(key)
        if cached is None:
            state = self.steps.start(1)
            for idx in [BOUNDARY_ID, *prefix]:
                state, logits = self.steps.step(state, np.array([idx], dtype=np.int64))
            cached = (state, log_softmax_rows(logits))
            size = state_bytes(cached)
            if self.start_cache_bytes + size <= knobs.START_CACHE_BYTES:
                self._starts[key] = cached
                self.start_cache_bytes += size
        return cached

    def cdf_of(self, log_probs: np.ndarray, shaping: Shaping, first_step: bool) -> np.ndarray:
        if shaping.plain and not (first_step and shaping.forbid_end_first):
            return plain_cdf(log_probs)
        return shaping.cdf(log_probs, first_step)

    def log_probs(self, state: State) -> np.ndarray:
        return state[1]

    def advance(self, state: State, ids: np.ndarray) -> State:
        model_state, logits = self.steps.step(state[0], ids)
        return model_state, log_softmax_rows(logits)

    def keep(self, state: State, rows: np.ndarray) -> State:
        return self.steps.keep(state[0], rows), state[1][rows]

    def score(self, words: list[list[int]]) -> list[np.ndarray]:
        """The words in chunks of at most `knobs.FORWARD_CHUNK_ROWS` (each step's batch stays in
        the batch-invariant range: a word's numbers do not depend on the words scored with it)."""
        return [picked for picked, _ in self._chunked(words, finals=False)]

    def prefix_log_probs(self, prefixes: list[list[int]]) -> list[np.ndarray]:
        """For each prefix (ids), log p(next id | '.' + prefix) over the vocabulary: all prefixes in
        one scoring pass (the next character's distribution is the one that predicts a word's end)."""
        return [final for _, final in self._chunked(prefixes, finals=True)]

    def _chunked(self, words: list[list[int]], finals: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
        chunk = knobs.FORWARD_CHUNK_ROWS
        return [
            out
            for i in range(0, len(words), chunk)
            for out in self._score_chunk(words[i : i + chunk], finals)
        ]

    def _score_chunk(
        self, words: list[list[int]], finals: bool
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """All words step by step together, longest first, so each step forwards only the words
        that still have a character (or the end) to predict: each word's log p of its characters and
        end, and (`finals`) its whole last distribution, the one after the word."""
        order = np.argsort([-len(word) for word in words], kind="stable")
        lengths = np.array([len(words[i]) for i in order], dtype=np.int64)
        longest = int(lengths.max(initial=0))
        rows = np.zeros((len(words), longest + 2), dtype=np.int64)  # '.' + word + '.' (+ padding)
        for row, i in enumerate(order):
            rows[row, 1 : lengths[row] + 1] = words[i]
        picked = np.zeros((len(words), longest + 1))
        last = np.zeros((len(words), self.vocab_size)) if finals else None
        tabled = self.table_levels()  # steps 0 .. tabled - 1 are lookups in the prefix table
        partial = tabled if self.table_depth() > tabled else -1  # step with lookups for some rows
        codes = np.zeros(len(words), dtype=np.int64)
        state = None if tabled else self.steps.start(len(words))
        for t in range(longest + 1):
            going = int((lengths >= t).sum())  # rows (a prefix: longest first) with a target at t
            cancel.charge(going * self.step_seconds(t + 1))
            if going < len(rows):
                rows, codes = rows[:going], codes[:going]
                if t >= tabled:
                    state = self.steps.keep(state, np.arange(going))
            if t < tabled:  # the state after '.' + the first t ids
                codes = codes * self.vocab_size + rows[:, t] if t else codes
                state, log_probs = self.tabled(t, codes)
            elif t == partial:
                codes = codes * self.vocab_size + rows[:, t]
                state, log_probs = self._partly_tabled(t, state, codes, rows[:, t])
            else:
                state, logits = self.steps.step(state, rows[:, t])
                log_probs = log_softmax_rows(logits)
            picked[:going, t] = log_probs[np.arange(going), rows[:, t + 1]]
            if last is not None:
                ending = np.flatnonzero(lengths[:going] == t)
                last[ending] = log_probs[ending]
        out: list[tuple[np.ndarray, np.ndarray | None]] = [(np.empty(0), None)] * len(words)
        for row, i in enumerate(order):
            out[i] = (picked[row, : lengths[row] + 1], None if last is None else last[row])
        return out

    def _partly_tabled(
        self, length: int, before: State, codes: np.ndarray, ids: np.ndarray
    ) -> tuple[State, np.ndarray]:
        """The steps' states and log-probabilities after reading `ids` from the steps' states
        `before`: looked up for the new prefixes of `length` ids (`codes`) that the table's partial
        level holds, stepped for the others (the same bits: `refillable` steps give a row's state
        in any pass)."""
        found = self.table_rows(length, codes)
        missing = np.flatnonzero(found < 0)
        state, log_probs = self.tabled_state(np.maximum(found, 0))  # row 0 stands in for the missing
        if len(missing):
            stepped, logits = self.steps.step(self.steps.keep(before, missing), ids[missing])
            state = self.steps.put(state, missing, stepped)
            log_probs[missing] = log_softmax_rows(logits)
        return state, log_probs


class ContextTable(NextCharSource):
    """Every context's log-probabilities, computed once by a window model, looked up by code.

    A context's code is its ids read as a base-vocab_size number: appending id j to the context
    with code c gives code (c * V + j) % V**window. State: each row's context code.
    """

    rows_independent = True
    cheap_steps = True

    def __init__(self, forward: ForwardSource, window: int) -> None:
        v = self.vocab_size = forward.vocab_size
        self.context_count = v**window
        every_context = np.ascontiguousarray(np.indices((v,) * window).reshape(window, -1).T)
        model, device = forward.model, next(forward.model.parameters()).device
        chunks = []
        with torch.inference_mode():
            for start in range(0, self.context_count, knobs.TABLE_BUILD_CHUNK):
                contexts = torch.from_numpy(every_context[start : start + knobs.TABLE_BUILD_CHUNK])
                logits = model.window_logits(contexts.to(device))
                chunks.append(log_softmax_rows(logits.to("cpu", torch.float64).numpy()))
        self.table = np.concatenate(chunks)
        self.cdf_table = Shaping().cdf(self.table, first_step=False)
        self.cdf_rows: list[list[float]] = self.cdf_table.tolist()  # for loops over a few names
        self._first_rows: dict[tuple[int, Shaping], list[float]] = {}

    def next_code(self, code: int, idx: int) -> int:
        return (code * self.vocab_size + idx) % self.context_count

    def start(self, prefix: list[int]) -> np.ndarray:
        return np.array([self.prefix_code(prefix) % self.context_count], dtype=np.int64)

    def log_probs(self, state: np.ndarray) -> np.ndarray:
        return self.table.take(state, axis=0)

    def log_prob(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return self.table[state, ids]

    def advance(self, state: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return (state * self.vocab_size + ids) % self.context_count

    def keep(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return state[rows]

    def cdf(self, state: np.ndarray, shaping: Shaping, first_step: bool) -> np.ndarray:
        if shaping.plain and not first_step:
            return self.cdf_table.take(state, axis=0)
        return self.cdf_of(self.log_probs(state), shaping, first_step)

    def first_cdf_row(self, code: int, shaping: Shaping) -> list[float]:
        """The CDF row that starts names after context `code` (memoised for plain shaping: every
        call with the same prefix starts alike)."""
        if not shaping.plain:
            return shaping.cdf(self.table[code : code + 1], first_step=True)[0].tolist()
        key = (code, shaping)
        if key not in self._first_rows:
            self._first_rows[key] = shaping.cdf(self.table[code : code + 1], first_step=True)[0].tolist()
        return self._first_rows[key]

    def shaped_row(self, code: int, shaping: Shaping) -> list[float]:
        """A later step's CDF row as a Python list."""
        if shaping.plain:
            return self.cdf_rows[code]
        return shaping.cdf(self.table[code : code + 1], first_step=False)[0].tolist()

    def score(self, words: list[list[int]]) -> list[np.ndarray]:
        log_prob, out = self.table.item, []
        for word in words:
            code, lps = 0, []
            for idx in [*word, BOUNDARY_ID]:
                lps.append(log_prob(code, idx))
                code = self.next_code(code, idx)
            out.append(np.array(lps))
        return out


class GuidedSteps:
    """Classifier-free guidance (Ho & Salimans, 2022) of a conditional model's steps: the next-id
    log-probabilities (1 + w) log p(id | prefix, value) - w log p(id | prefix), which the source
    normalises again. w = 0 is the conditional model itself; w > 0 leans away from what the model
    writes without a condition, so the value shows more clearly. State: both models' states."""

    def __init__(self, conditioned: Any, unconditioned: Any, weight: float) -> None:
        self.conditioned, self.unconditioned, self.weight = conditioned, unconditioned, weight

    def start(self, rows: int) -> State:
        return self.conditioned.start(rows), self.unconditioned.start(rows)

    def step(self, state: State, ids: np.ndarray) -> tuple[State, np.ndarray]:
        with_value, lc = self.conditioned.step(state[0], ids)
        without, lu = self.unconditioned.step(state[1], ids)
        w = self.weight
        return (with_value, without), (1 + w) * log_softmax_rows(lc) - w * log_softmax_rows(lu)

    def keep(self, state: State, rows: np.ndarray) -> State:
        return self.conditioned.keep(state[0], rows), self.unconditioned.keep(state[1], rows)

    @property
    def joinable(self) -> bool:
        return all(getattr(steps, "joinable", False) for steps in (self.conditioned, self.unconditioned))

    def put(self, state: State, places: np.ndarray, new: State) -> State:
        return (
            self.conditioned.put(state[0], places, new[0]),
            self.unconditioned.put(state[1], places, new[1]),
        )

    def join(self, states: list[State]) -> State:
        return (
            self.conditioned.join([state[0] for state in states]),
            self.unconditioned.join([state[1] for state in states]),
        )


def build_guided_source(
    conditioned: CharModel, unconditioned: CharModel, weight: float, device: torch.device
) -> NextCharSource:
    """A forward source whose steps are `GuidedSteps` of the two views of one conditional model."""
    source = ForwardSource(conditioned, device)
    if weight:
        guided = GuidedSteps(source.steps.inner, ForwardSource(unconditioned, device).steps.inner, weight)
        source.steps = PaddedSteps(guided, source.min_rows)
        source.parameters *= 2  # each step runs the network twice: the cost bound charges both
    return source


def build_source(
    model: CharModel, device: torch.device, max_table_entries: int = knobs.MAX_TABLE_ENTRIES
) -> NextCharSource:
    """The forward pass, or its exact table when the model reads a window whose table fits."""
    forward = ForwardSource(model, device)
    window = model.window
    if window is not None and model.config.vocab_size ** (window + 1) <= max_table_entries:
        return ContextTable(forward, window)
    if forward.torch_steps:
        # A family stepped through torch (the transformer, the WaveNet): float32, 2-4x faster than
        # float64 and half the memory (30 steps of 1,000 rows: 9.5 s -> 2.2 s, measured), and
        # batch-invariant from 4 rows where float64 was at no minimum (the WaveNet's torch float64
        # steps failed the self-test at 1-16 rows; float32 passes at 4; none of 2,000 seeded names
        # changed). A window family whose table fits is served from its float64 table instead.
        model.to(torch.float32)
    return forward
