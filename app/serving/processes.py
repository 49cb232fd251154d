"""Model processes: forward-pass work that leaves the event loop runs in worker processes.

Two threads sampling the GRU draw only 1.2-1.4x the names of one thread while keeping 1.7 CPUs
busy: each of a step's forty-odd NumPy and torch calls releases and retakes the GIL, and the
handoffs cost about as much as the arithmetic. Two processes draw 1.9-2.0x (README, Speed). So a
server runs a process per worker thread when it has two or more (NAMEGEN_PROCESSES; at most 4),
and every pass of a forward-pass model that does not run inline goes to the least busy one.

Each process forks from a forkserver that has imported the engine, loads every forward-pass model
from its checkpoint and pads its steps to the minimum the server's self-test chose. At start-up
each process computes each model's golden digest of seeded answers (`model.engine.golden`): when
one differs from the server's, the processes are stopped and the work runs on threads (logged), so
an answer never depends on where it was computed. Work goes as a `ModelCall` and comes back
pickled, sampled names as their JSON (`app.serving.rendered`). A shared byte per job carries `gone`
across (the server sets it once every client of the job has gone; the work stops at its next step),
and the cost bound is charged in the process as on a thread: the same request stops at the same
step. A process that dies (killed for memory) fails the jobs it held with `ProcessLost` (503 +
Retry-After) and is started again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from app.serving.rendered import rendered
from model.engine import knobs
from model.engine.cancel import bounded, check
from model.engine.golden import answers_digest
from model.engine.language_model import LanguageModel

log = logging.getLogger("uvicorn.error")  # the service's logger

GONE_POLL_SECONDS = 0.02  # how often a job's `gone` is looked at while its process works


@dataclass(frozen=True)
class ModelCall:
    """Model work as data: `getattr(model, method)(*args, **kwargs)`. Unlike a closure it can be
    sent to a model process."""

    method: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: LanguageModel) -> Any:
        return getattr(model, self.method)(*self.args, **self.kwargs)


def default_process_count(workers: int) -> int:
    """As many processes as worker threads (NAMEGEN_WORKERS, by default the usable CPUs), at most
    `knobs.MAX_DEFAULT_PROCESSES`; none for one worker, where a process only adds a hop."""
    return min(workers, knobs.MAX_DEFAULT_PROCESSES) if workers >= 2 else 0


class ProcessLost(Exception):
    """The model process computing a job died (e.g. killed for memory): answered 503."""

    retry_after = 1

    def __init__(self) -> None:
        super().__init__("a model process stopped while computing this request; retry in 1 s")


# In a model process: its models, and the shared bytes that say a job's clients have gone.
_models: dict[str, LanguageModel] = {}
_gone_flags: Any = None


def _start(specs: list[tuple[str, str, int | None]], gone_flags: Any) -> None:
    """A process's initializer: one BLAS/torch thread, then every (name, checkpoint, min_rows)."""
    import torch
    from threadpoolctl import threadpool_limits

    global _gone_flags
    gc.freeze()  # the objects shared with the forkserver: a collection would copy their pages
    torch.set_num_threads(1)
    threadpool_limits(1)
    for name, path, min_rows in specs:
        model = LanguageModel.from_checkpoint(path, device="cpu")
        model.pad_to(min_rows)
        _models[name] = model
    _gone_flags = gone_flags
    gc.freeze()  # as the server does after loading (app.main)


def _digests() -> dict[str, str]:
    return {name: answers_digest(model) for name, model in _models.items()}


@dataclass(frozen=True)
class _Flag:
    slot: int

    def is_set(self) -> bool:
        return bool(_gone_flags[self.slot])


def _run(name: str, call: ModelCall, slot: int, budget: float) -> Any:
    with bounded(_Flag(slot), budget):
        check()  # a job whose clients hung up while it waited costs nothing
        return rendered(call.method, call(_models[name]))  # names as their JSON (`app.serving.rendered`)


@dataclass
class _Process:
    pool: ProcessPoolExecutor
    jobs: int = 0  # submitted and not finished


class ModelProcesses:
    """`count` processes serving every forward-pass model of `models` (all on the CPU)."""

    def __init__(self, count: int, served: dict[str, LanguageModel], slots: int) -> None:
        """`served`: the forward-pass models; `slots`: the most jobs in flight at once (the
        runner's queue bound)."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["model.engine.language_model"])
        self.context = context
        self.served = served
        self.specs = [(name, str(m.checkpoint.path), m.min_rows) for name, m in self.served.items()]
        self.gone_flags = context.RawArray("b", slots)
        self.free_slots = list(range(slots))
        self.processes = [_Process(self._new_pool()) for _ in range(count)]

    @classmethod
    def start(cls, count: int, models: dict[str, LanguageModel], slots: int) -> ModelProcesses | None:
        """Started and checked processes, or None (logged) when none are wanted or they cannot
        give the server's bytes: the work then runs on threads."""
        forward = {name: m for name, m in models.items() if not m.rows_independent}
        if count < 1 or not forward or any(m.device.type != "cpu" for m in forward.values()):
            return None
        processes = None
        try:
            processes = cls(count, forward, slots)
            problem = processes.check()
        except Exception as exc:  # e.g. a process that failed to start: its pool is broken
            problem = f"a model process failed to start ({type(exc).__name__}: {exc})"
        if processes is not None and problem is None:
            log.info("model processes: %d, serving %s", count, ", ".join(processes.served))
            return processes
        if processes is not None:
            processes.close()
        log.warning("model processes off, forward passes run on threads: %s", problem)
        return None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            1, self.context, initializer=_start, initargs=(self.specs, self.gone_flags)
        )

    def check(self) -> str | None:
        """Why some process's golden digests differ from this server's (None: every one agrees)."""
        answers = [process.pool.submit(_digests) for process in self.processes]  # they start side by side
        expected = {name: answers_digest(model) for name, model in self.served.items()}
        for number, answer in enumerate(answers):
            got = answer.result()
            differ = [name for name in expected if got.get(name) != expected[name]]
            if differ:
                return f"process {number} answers {', '.join(differ)} with other bytes than this one"
        return None

    def pids(self) -> list[int]:
        """Each process's id (it starts the process if it is not running)."""
        return [process.pool.submit(os.getpid).result() for process in self.processes]

    def serves(self, model: LanguageModel) -> bool:
        return model.name in self.served

    @property
    def count(self) -> int:
        return len(self.processes)

    async def run(
        self, model: LanguageModel, call: ModelCall, gone: Any = None, budget: float = float("inf")
    ) -> Any:
        """`call` on `model` in the least busy process; `gone` (anything with `is_set()`) is
        looked at every `GONE_POLL_SECONDS` and passed on. ProcessLost when the process dies."""
        process = min(self.processes, key=lambda p: p.jobs)
        pool, slot = process.pool, self.free_slots.pop()
        try:
            job = asyncio.wrap_future(pool.submit(_run, model.name, call, slot, budget))
        except BrokenProcessPool:
            self.free_slots.append(slot)
            self._replace(process, pool)
            raise ProcessLost() from None
        process.jobs += 1
        job.add_done_callback(lambda _: self._finished(process, slot))
        try:
            while True:
                done, _ = await asyncio.wait({job}, timeout=GONE_POLL_SECONDS)
                if done:
                    return job.result()
                if gone is not None and gone.is_set():
                    self.gone_flags[slot] = 1
        except BrokenProcessPool:
            self._replace(process, pool)
            raise ProcessLost() from None
        except asyncio.CancelledError:  # nobody waits for the answer any more
            self.gone_flags[slot] = 1
            raise

    def _finished(self, process: _Process, slot: int) -> None:
        process.jobs -= 1
        self.gone_flags[slot] = 0
        self.free_slots.append(slot)

    def _replace(self, process: _Process, broken: ProcessPoolExecutor) -> None:
        """A new pool for a process whose pool `broken` died (once, however many jobs report it)."""
        if process.pool is broken:
            log.error("a model process stopped; starting another")
            broken.shutdown(wait=False, cancel_futures=True)
            process.pool = self._new_pool()

    def close(self) -> None:
        for process in self.processes:
            process.pool.shutdown(wait=True, cancel_futures=True)
