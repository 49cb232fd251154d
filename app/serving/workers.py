"""Where model work runs: inline on the event loop when it is short, else on a few worker threads,
or, for a forward-pass model, in the model processes when the server runs them (`processes`).

A hop to a worker thread costs more than a table lookup, and a worker doing Python work fights
the event loop for the GIL, so work the model calls quick (`LanguageModel.is_quick`, budgets in
`model.engine.knobs`) runs inline. Longer work goes to at most `threads` workers: more would only
queue on the same cores, each holding its own buffers (and glibc heap arena) while it waits.

The queue in front of the workers is bounded too (`max_queue` jobs waiting or running): past it a
request is refused at once with `Overloaded` (503 + Retry-After, `app.api.errors`) instead of holding
its memory while it waits behind minutes of work. A job whose client has hung up (`gone`: the
HTTP layer sets it when the connection is lost) never starts, and long work stops at its next step
(`model.engine.cancel`): dead work does not hold the workers.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from app.serving.cpus import available_cpus
from app.serving.processes import ModelCall, ModelProcesses
from model.engine import knobs
from model.engine.cancel import bounded, check
from model.engine.language_model import LanguageModel
from model.engine.params import ParameterError

T = TypeVar("T")


class Overloaded(Exception):
    """More heavy work is waiting than the server accepts: answered 503 with Retry-After."""

    def __init__(self, waiting: int, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(f"the server is busy ({waiting} model jobs queued); retry in {retry_after} s")


def usable_cores() -> int:
    """The CPUs this process may use: its CPU affinity capped by its cgroup's CPU quota."""
    return available_cpus()


class ModelRunner:
    def __init__(self, threads: int | None, max_queue: int, processes: ModelProcesses | None = None) -> None:
        """`threads` workers (None: the usable cores), the model processes if any, and at most
        `max_queue` jobs waiting or running on either (NAMEGEN_WORKERS, NAMEGEN_MAX_QUEUE)."""
        self.threads = threads or usable_cores()
        self.max_queue = max_queue
        self.processes = processes
        self.limiter = anyio.CapacityLimiter(self.threads)
        self.queued = 0  # jobs waiting for or running on a worker (only the event loop touches it)

    def passes_now(self, model: LanguageModel, in_flight: int) -> int:
        """How many new passes of forward-pass `model` may start while `in_flight` of its passes
        run (a batch is cut into as many; at 0 new requests wait and join the next pass). In
        model processes: two per process, one computing and one queued behind it, so a process
        never idles while the event loop answers its last pass and reads the next requests. On
        threads: a pass per worker, once the passes before have all ended (passes then grow under
        load instead of queueing behind each other)."""
        if self.processes is not None and self.processes.serves(model):
            return max(0, 2 * self.processes.count - in_flight)
        return self.threads if not in_flight else 0

    async def run(
        self,
        model: LanguageModel,
        call: ModelCall,
        names: int = 0,
        words: int = 0,
        inline: bool = True,
        gone: Any = None,
        budget: float = math.inf,
    ) -> Any:
        """`call` on `model` (drawing `names` names or scoring `words` words) inline when it is
        short and `inline` allows it, else in a model process when they serve `model`, else on a
        worker thread (Overloaded when the queue is full). Once `gone` is set (the client hung up)
        work not started never starts and work running stops at its next step (`Cancelled`); work
        whose estimated cost passes `budget` seconds stops there too (`OverBudget`)."""
        if inline and model.is_quick(names, words):
            return call(model)
        if self.processes is not None and self.processes.serves(model):
            with self.admitted():
                return await self.processes.run(model, call, gone=gone, budget=budget)
        return await self.off_loop(lambda: call(model), gone=gone, budget=budget)

    def parts(self, model: LanguageModel, count: int) -> list[tuple[int, int]]:
        """`count` words to score cut into one part per idle model process serving `model` (each
        of whole `knobs.FORWARD_CHUNK_ROWS`-word passes, so it is scored in the passes it would be
        in alone), as (start, end) pairs; one part where the processes do not serve `model`, are
        busy, or the words fill one pass. The parts are scored side by side, and a word's scores do
        not depend on the words scored with it (the model's batching is "exact" or it is scored by
        itself). A/B of 6 rounds, 1,000 words at c=1: 1.52-1.57x the requests/s of one part. At
        c=16, where the processes are busy, parts for every process cost 0.92x; for the idle ones
        only (so mostly none) 0.97x."""
        chunk = knobs.FORWARD_CHUNK_ROWS
        chunks = -(-count // chunk)
        if self.processes is None or not self.processes.serves(model) or chunks < 2:
            return [(0, count)]
        idle = sum(not self.processes.jobs(number) for number in range(self.processes.count))
        size = -(-chunks // min(chunks, max(1, idle))) * chunk
        return [(start, min(start + size, count)) for start in range(0, count, size)]

    async def run_parts(
        self,
        model: LanguageModel,
        calls: list[tuple[ModelCall, int]],
        gone: Any = None,
        budget: float = math.inf,
    ) -> list[Any]:
        """Each (call, words it scores) side by side through `run`; their answers in order. Bad
        words in several parts make one ParameterError naming all of them, as the whole list would
        (it checks every word before it scores any); any other error is the first part's."""
        answers = await asyncio.gather(
            *(self.run(model, call, words=words, gone=gone, budget=budget) for call, words in calls),
            return_exceptions=True,
        )
        errors = [answer for answer in answers if isinstance(answer, BaseException)]
        bad = [error for error in errors if isinstance(error, ParameterError)]
        if bad:
            raise ParameterError.of([problem for error in bad for problem in error.problems])
        if errors:
            raise errors[0]
        return answers

    async def off_loop(
        self,
        work: Callable[[], T],
        admitted: bool = False,
        gone: threading.Event | None = None,
        budget: float = math.inf,
    ) -> T:
        """`work()` on a worker thread, or Overloaded at once when `max_queue` jobs are ahead
        (unless `admitted`: the next step of work already accepted, e.g. a streamed export's
        next chunk, which waits its turn instead of failing half-way through its answer)."""
        with self.admitted(already=admitted):
            return await anyio.to_thread.run_sync(_bounded, work, gone, budget, limiter=self.limiter)

    @contextmanager
    def admitted(self, already: bool = False) -> Iterator[None]:
        """Counts a job in the queue for as long as it waits or runs; Overloaded at once when
        `max_queue` jobs are ahead (unless it was `already` admitted)."""
        if self.queued >= self.max_queue and not already:
            raise Overloaded(self.queued)
        self.queued += 1
        try:
            yield
        finally:
            self.queued -= 1


def _bounded(work: Callable[[], T], gone: threading.Event | None, budget: float) -> T:
    """`work()` on this worker thread unless its client has gone, within its budget."""
    with bounded(gone, budget):
        check()  # a job whose client hung up while it waited costs nothing
        return work()
