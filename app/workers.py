"""Where model work runs: inline on the event loop when it is short, else on a few worker threads.

A hop to a worker thread costs more than a table lookup, and a worker doing Python work fights
the event loop for the GIL, so short work on a model with an exact table runs inline (budgets in
`model.engine.knobs`). Longer work, and any forward-pass model, goes to at most `threads`
workers: more would only queue on the same cores, each holding its own buffers (and glibc heap
arena) while it waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from app.cpus import available_cpus
from model.engine import knobs
from model.engine.language_model import LanguageModel

T = TypeVar("T")


def usable_cores() -> int:
    """The CPUs this process may use: its CPU affinity capped by its cgroup's CPU quota."""
    return available_cpus()


class ModelRunner:
    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or usable_cores()
        self.limiter = anyio.CapacityLimiter(self.threads)

    @staticmethod
    def runs_inline(model: LanguageModel, names: int = 0, words: int = 0) -> bool:
        """Short work on a table model: at most the inline budgets of names and words."""
        return model.rows_independent and names <= knobs.INLINE_MAX_NAMES and words <= knobs.INLINE_MAX_WORDS

    async def run(self, model: LanguageModel, work: Callable[[], T], names: int = 0, words: int = 0) -> T:
        """`work()` (on `model`, drawing `names` names or scoring `words` words) inline when it is
        short, else on a worker thread."""
        if self.runs_inline(model, names, words):
            return work()
        return await anyio.to_thread.run_sync(work, limiter=self.limiter)
