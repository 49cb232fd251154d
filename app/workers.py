"""Where model work runs: inline on the event loop when it is short, else on a few worker threads.

A hop to a worker thread costs more than a table lookup, and a worker doing Python work fights
the event loop for the GIL, so work the model calls quick (`LanguageModel.is_quick`, budgets in
`model.engine.knobs`) runs inline. Longer work goes to at most `threads`
workers: more would only queue on the same cores, each holding its own buffers (and glibc heap
arena) while it waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from app.cpus import available_cpus
from model.engine.language_model import LanguageModel

T = TypeVar("T")


def usable_cores() -> int:
    """The CPUs this process may use: its CPU affinity capped by its cgroup's CPU quota."""
    return available_cpus()


class ModelRunner:
    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or usable_cores()
        self.limiter = anyio.CapacityLimiter(self.threads)

    async def run(self, model: LanguageModel, work: Callable[[], T], names: int = 0, words: int = 0) -> T:
        """`work()` (on `model`, drawing `names` names or scoring `words` words) inline when it is
        short, else on a worker thread."""
        if model.is_quick(names, words):
            return work()
        return await anyio.to_thread.run_sync(work, limiter=self.limiter)
