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
an answer never depends on where it was computed. Work goes as a `ModelCall`, pickled, down a
pipe to the process, which answers its jobs in order; the event loop reads the answers when the
pipe is readable. No thread in the server takes part: `concurrent.futures.ProcessPoolExecutor`,
used before, runs two per pool (a manager and a queue feeder), which fought the event loop for the
GIL on every job (`/sample` n=100 at c=16, A/B of 3 rounds: 36,500 names/s against 31,100). A
shared byte per job carries `gone` across (the server sets it once every client of the
job has gone; the work stops at its next step), and the cost bound is charged in the process as on
a thread: the same request stops at the same step. A process that dies (killed for memory) fails
the jobs it held with `ProcessLost` (503 + Retry-After) and is started again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import pickle
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

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
    """A process's set-up: one BLAS/torch thread, then every (name, checkpoint, min_rows)."""
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


def _serve(conn: Connection, specs: list[tuple[str, str, int | None]], gone_flags: Any) -> None:
    """A model process: set up, then answer the jobs read from `conn` one after the other, in
    order, each with ("ok", its value) or ("error", its exception); until the server closes `conn`.
    A thread reads the jobs as they come: were they read only between jobs, a server sending more
    jobs while this process writes a big answer would wait on a full pipe, this process on the
    server reading its answer, and neither would move."""
    _start(specs, gone_flags)
    jobs: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read_jobs() -> None:
        try:
            while True:
                jobs.put(conn.recv_bytes())
        except (EOFError, OSError):
            jobs.put(None)

    threading.Thread(target=read_jobs, name="namegen-jobs", daemon=True).start()
    while (job := jobs.get()) is not None:
        name, call, slot, budget = pickle.loads(job)
        try:
            answer = ("ok", _digests() if name is None else _run(name, call, slot, budget))
            message = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            try:
                message = pickle.dumps(("error", exc), pickle.HIGHEST_PROTOCOL)
            except Exception:  # an exception that does not pickle: its text still arrives
                message = pickle.dumps(("error", RuntimeError(repr(exc))), pickle.HIGHEST_PROTOCOL)
        try:
            conn.send_bytes(message)
        except OSError:  # the server has gone
            return


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
        return call(_models[name])


class _Process:
    """One model process and the server's end of its pipe: jobs go in as pickled bytes and their
    answers come back in the same order. The event loop reads answers when the pipe is readable
    (no thread in the server: a thread would fight the loop for the GIL on every job)."""

    def __init__(self, context: Any, specs: list, gone_flags: Any) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, specs, gone_flags), daemon=True)
        self.process.start()
        child.close()
        self.waiting: deque[tuple[asyncio.Future, int]] = deque()  # per job sent: its future, slot
        self.loop: asyncio.AbstractEventLoop | None = None  # whose reader watches `conn`

    @property
    def jobs(self) -> int:
        """Jobs sent and not answered."""
        return len(self.waiting)

    def ask(self, message: tuple) -> Any:
        """Send one job and wait for its answer, blocking (start-up only, before any loop reads)."""
        self.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        status, value = pickle.loads(self.conn.recv_bytes())
        if status == "error":
            raise value
        return value

    def stop(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.conn.fileno())
        self.loop = None
        self.conn.close()  # the process reads EOF and returns
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


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
        self.processes = [self._new_process() for _ in range(count)]

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
        except Exception as exc:  # e.g. a process that failed to start or to load its models
            problem = f"a model process failed to start ({type(exc).__name__}: {exc})"
        if processes is not None and problem is None:
            log.info("model processes: %d, serving %s", count, ", ".join(processes.served))
            return processes
        if processes is not None:
            processes.close()
        log.warning("model processes off, forward passes run on threads: %s", problem)
        return None

    def _new_process(self) -> _Process:
        return _Process(self.context, self.specs, self.gone_flags)

    def check(self) -> str | None:
        """Why some process's golden digests differ from this server's (None: every one agrees)."""
        expected = {name: answers_digest(model) for name, model in self.served.items()}
        for number, process in enumerate(self.processes):  # each loaded its models side by side
            got = process.ask((None, None, 0, 0.0))
            differ = [name for name in expected if got.get(name) != expected[name]]
            if differ:
                return f"process {number} answers {', '.join(differ)} with other bytes than this one"
        return None

    def pids(self) -> list[int]:
        """Each process's id."""
        return [process.process.pid for process in self.processes]

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
        self._watch(process)
        slot = self.free_slots.pop()
        answer = asyncio.get_running_loop().create_future()
        try:
            process.conn.send_bytes(pickle.dumps((model.name, call, slot, budget), pickle.HIGHEST_PROTOCOL))
        except OSError:  # the process has gone
            self.free_slots.append(slot)
            self._lost(process)
            raise ProcessLost() from None
        process.waiting.append((answer, slot))
        try:
            while True:
                done, _ = await asyncio.wait({answer}, timeout=GONE_POLL_SECONDS)
                if done:
                    return answer.result()
                if gone is not None and gone.is_set():
                    self.gone_flags[slot] = 1
        except asyncio.CancelledError:  # nobody waits for the answer any more
            self.gone_flags[slot] = 1
            raise

    def _watch(self, process: _Process) -> None:
        """Read `process`'s answers on the running loop (a new loop replaces a closed one)."""
        loop = asyncio.get_running_loop()
        if process.loop is loop:
            return
        if process.loop is not None and not process.loop.is_closed():
            process.loop.remove_reader(process.conn.fileno())
        loop.add_reader(process.conn.fileno(), self._answers, process)
        os.set_blocking(process.conn.fileno(), True)  # uvloop made it non-blocking: an answer is read whole
        process.loop = loop

    def _answers(self, process: _Process) -> None:
        """Every answer `process` has sent: each to its job's future, its slot freed."""
        try:
            while process.conn.poll():  # readable with no answer left: the process has gone (EOF)
                status, value = pickle.loads(process.conn.recv_bytes())
                answer, slot = process.waiting.popleft()
                self._free(slot)
                if not answer.done():
                    (answer.set_result if status == "ok" else answer.set_exception)(value)
        except (EOFError, OSError):
            self._lost(process)

    def _free(self, slot: int) -> None:
        self.gone_flags[slot] = 0
        self.free_slots.append(slot)

    def _lost(self, process: _Process) -> None:
        """`process` died: its jobs fail with ProcessLost and a new process takes its place."""
        if process not in self.processes:
            return
        log.error("a model process stopped; starting another")
        self.processes[self.processes.index(process)] = self._new_process()
        while process.waiting:
            answer, slot = process.waiting.popleft()
            self._free(slot)
            if not answer.done():
                answer.set_exception(ProcessLost())
        process.stop()

    def close(self) -> None:
        for process in self.processes:
            process.stop()
