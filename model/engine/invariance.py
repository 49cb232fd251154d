"""The start-up self-test of batch invariance: may concurrent requests share a forward pass?

A forward source pads every step to `min_rows` rows and runs at most `knobs.FORWARD_CHUNK_ROWS`
rows at once (`model.engine.sources`). Whether a row's numbers then depend on its batch is a fact
of this machine's BLAS, so it is measured, not assumed: probe rows are stepped alone (padded) and
inside a batch of every size from the minimum to the chunk size (on another thread), at every other
position among random other rows, and their log-probabilities compared bit for bit. The
smallest candidate minimum that passes for every source of a model is the one it pads to; when
none passes, the model is not batched (each request is computed by itself, still padded).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from model.engine import knobs
from model.engine.sources import ForwardSource

_POOL_STEPS = 3  # steps of random ids before the probe step: a state well into a name
_PROBES = 3  # distinct probe rows, repeated over a batch's positions


def invariant(
    source: ForwardSource, min_rows: int, chunk: int = knobs.FORWARD_CHUNK_ROWS, seed: int = 0
) -> bool:
    """Whether every probe row's next step is the same bits alone as inside batches of every size
    from `min_rows` to `chunk`, with `source` padding to `min_rows`. The probes fill every other
    position of a batch (even positions at even sizes, odd ones at odd sizes: a BLAS kernel may
    treat a tile's edge rows differently), random rows the rest. Leaves `min_rows` set."""
    rng = np.random.default_rng(seed)
    source.min_rows = min_rows
    steps, vocab = source.steps, source.vocab_size
    pool = steps.start(chunk)
    for _ in range(_POOL_STEPS):
        pool, _ = steps.step(pool, rng.integers(1, vocab, chunk))
    probes = rng.choice(chunk, _PROBES, replace=False)
    probe_ids = rng.integers(0, vocab, _PROBES)
    alone = np.stack(
        [
            steps.step(steps.keep(pool, np.array([p])), probe_ids[i : i + 1])[1][0]
            for i, p in enumerate(probes)
        ]
    )

    def batches() -> bool:
        for size in range(max(min_rows, 1), chunk + 1):
            rows, ids = rng.integers(0, chunk, size), rng.integers(0, vocab, size)
            at = np.arange((size + 1) % 2, size, 2) if size > 1 else np.zeros(1, dtype=np.int64)
            which = np.arange(len(at)) % _PROBES
            rows[at], ids[at] = probes[which], probe_ids[which]
            _, logits = steps.step(steps.keep(pool, rows), ids)
            if logits[at].tobytes() != alone[which].tobytes():
                return False
        return True

    return on_another_thread(batches)


def on_another_thread(work: Callable[[], bool]) -> bool:
    """`work()` on a new thread: the batches are stepped on another thread than the lone probes,
    as the service's requests run on the event loop or on any worker (a BLAS may differ by thread)."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(work()), name="namegen-invariance")
    thread.start()
    thread.join()
    return bool(result and result[0])


def smallest_minimum(
    sources: Sequence[ForwardSource], candidates: Sequence[int] = knobs.PAD_MIN_ROWS_CANDIDATES
) -> int | None:
    """The smallest candidate minimum under which every source is batch-invariant (None: none is).
    Each source is left padding to it, or to `knobs.PAD_MIN_ROWS` when none passes."""
    for min_rows in candidates:
        if all(invariant(source, min_rows) for source in sources):
            for source in sources:
                source.min_rows = min_rows
            return min_rows
    for source in sources:
        source.min_rows = knobs.PAD_MIN_ROWS
    return None
