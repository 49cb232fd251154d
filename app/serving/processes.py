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
an answer never depends on where it was computed.

Work goes as a `ModelCall` down a pipe of the process's own and comes back up another, pickled in
length-prefixed frames (`app.serving.frames`), sampled names as their JSON (`app.serving.rendered`).
The event loop writes without blocking and reads the answers pipe when it is readable
(`loop.add_reader`): no thread in between. A round trip through a `ProcessPoolExecutor`, whose
feeder and management threads pass every job along, cost the server's process 150-180 us of CPU;
through the loop's own pipes about 25-32 us (README, Speed). A shared byte per job carries `gone`
across (the server sets it once every client of the job has gone; the work stops at its next step),
and the cost bound is charged in the process as on a thread: the same request stops at the same
step. A process that dies (killed for memory) ends its answers pipe: the jobs it held fail with
`ProcessLost` (503 + Retry-After), and the next job for its place starts another.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from app.serving import frames
from app.serving.rendered import rendered
from model.engine import knobs
from model.engine.cancel import bounded, check
from model.engine.golden import answers_digest
from model.engine.language_model import LanguageModel

log = logging.getLogger("uvicorn.error")  # the service's logger

GONE_POLL_SECONDS = 0.02  # how often a job's `gone` is looked at while its process works

Spec = tuple[str, str, int | None]  # a served model: name, checkpoint, the rows its steps pad to
Lost = Callable[["_Process"], None]  # told when a process's pipe reports that it has died


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


def _start(specs: list[Spec], gone_flags: Any) -> None:
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


def _serve(specs: list[Spec], gone_flags: Any, jobs: Connection, answers: Connection) -> None:
    """A model process: loads the models, then answers each `(id, function, args)` read from `jobs`
    with `(id, True, result)` or `(id, False, exception)` on `answers`, in order, until `jobs`
    closes. Ctrl-C is the server's to handle: the server stops its processes itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start(specs, gone_flags)
    while True:
        try:
            job_id, function, args = frames.read_frame(jobs.fileno())
        except EOFError:
            return
        try:
            answer = frames.frame((job_id, True, function(*args)))
        except Exception as exc:  # handed to the server, which raises it for the request
            answer = frames.frame((job_id, False, _sendable(exc)))
        try:
            frames.write_all(answers.fileno(), answer)
        except BrokenPipeError:  # the server has gone
            return


def _sendable(exc: Exception) -> Exception:
    """`exc` if it pickles whole, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


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


class _Process:
    """One model process as the event loop sees it: the pipe its jobs go down (non-blocking; what
    does not fit waits in `outgoing` until the pipe has room), the pipe its answers come up (read
    when readable, cut into messages by a `FrameReader`) and the futures of its jobs in flight."""

    def __init__(self, context: Any, args: tuple) -> None:
        jobs_read, self.jobs_write = context.Pipe(duplex=False)
        self.answers_read, answers_write = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve, args=(*args, jobs_read, answers_write), name="namegen-model", daemon=True
        )
        self.process.start()
        jobs_read.close()  # the child's ends: the answers pipe ends (EOF) when the child does
        answers_write.close()
        self.jobs_fd, self.answers_fd = self.jobs_write.fileno(), self.answers_read.fileno()
        os.set_blocking(self.jobs_fd, False)
        os.set_blocking(self.answers_fd, False)
        self.reader = frames.FrameReader()
        self.outgoing = bytearray()
        self.waiting: dict[int, asyncio.Future] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop that watches the pipes

    @property
    def jobs(self) -> int:
        """Jobs sent and not answered."""
        return len(self.waiting)

    def watch(self, loop: asyncio.AbstractEventLoop, lost: Lost) -> None:
        """Read answers on `loop` from now on (the loop of the first job; a test may run several
        loops one after another)."""
        if self.loop is not loop:
            self.unwatch()
            self.loop = loop
            loop.add_reader(self.answers_fd, self._readable, lost)

    def unwatch(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.answers_fd)
            self.loop.remove_writer(self.jobs_fd)
        self.loop = None

    def send(self, job_id: int, future: asyncio.Future, message: tuple, lost: Lost) -> None:
        """`message` down the jobs pipe without blocking; `future` gets its answer."""
        self.waiting[job_id] = future
        sending = bool(self.outgoing)  # the loop already writes the rest when there is room
        self.outgoing += frames.frame((job_id, *message))
        if not sending:
            self._writable(lost)
            if self.outgoing and self.loop is not None:
                self.loop.add_writer(self.jobs_fd, self._writable, lost)

    def _writable(self, lost: Lost) -> None:
        """As much of `outgoing` as the jobs pipe takes now."""
        try:
            del self.outgoing[: os.write(self.jobs_fd, self.outgoing)]
        except BlockingIOError:
            return
        except OSError:  # BrokenPipeError: the process has died
            lost(self)
            return
        if not self.outgoing and self.loop is not None:
            self.loop.remove_writer(self.jobs_fd)

    def _readable(self, lost: Lost) -> None:
        try:
            data = os.read(self.answers_fd, frames.READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the process has died
            lost(self)
            return
        for job_id, ok, value in self.reader.feed(data):
            future = self.waiting.pop(job_id)
            if not future.done():
                future.set_result(value) if ok else future.set_exception(value)

    def send_now(self, function: Callable, *args: Any) -> None:
        """`function(*args)` sent to the process outside the event loop (start-up: no job in flight);
        `answer_now` waits for its answer."""
        assert not self.waiting and not self.outgoing
        frames.write_all(self.jobs_fd, frames.frame((-1, function, args)))

    def answer_now(self) -> Any:
        try:
            _, ok, value = frames.read_frame(self.answers_fd)
        except EOFError:
            raise ProcessLost() from None
        if not ok:
            raise value
        return value

    def stop(self, wait: float) -> None:
        """Close the pipes (the process ends once its job is done), waiting at most `wait` seconds
        before killing it; every job still waiting gets ProcessLost."""
        self.unwatch()
        self.jobs_write.close()
        self.process.join(wait)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.answers_read.close()
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ProcessLost())


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
        self.job_ids = itertools.count()
        self.processes: list[_Process | None] = [None] * count
        for number in range(count):
            self._process(number)

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
        except Exception as exc:  # e.g. a process that failed to start: its pipe ended
            problem = f"a model process failed to start ({type(exc).__name__}: {exc})"
        if processes is not None and problem is None:
            log.info("model processes: %d, serving %s", count, ", ".join(processes.served))
            return processes
        if processes is not None:
            processes.close()
        log.warning("model processes off, forward passes run on threads: %s", problem)
        return None

    def _process(self, number: int) -> _Process:
        """Process `number`, started again if it has died."""
        process = self.processes[number]
        if process is None:
            process = self.processes[number] = _Process(self.context, (self.specs, self.gone_flags))
        return process

    def check(self) -> str | None:
        """Why some process's golden digests differ from this server's (None: every one agrees)."""
        processes = [self._process(number) for number in range(self.count)]
        for process in processes:  # they compute side by side
            process.send_now(_digests)
        expected = {name: answers_digest(model) for name, model in self.served.items()}
        for number, process in enumerate(processes):
            got = process.answer_now()
            differ = [name for name in expected if got.get(name) != expected[name]]
            if differ:
                return f"process {number} answers {', '.join(differ)} with other bytes than this one"
        return None

    def pids(self) -> list[int]:
        """Each process's id (it starts the process if it is not running)."""
        return [self._process(number).process.pid for number in range(self.count)]

    def serves(self, model: LanguageModel) -> bool:
        return model.name in self.served

    @property
    def count(self) -> int:
        return len(self.processes)

    def jobs(self, number: int) -> int:
        """Jobs in flight in process `number`."""
        process = self.processes[number]
        return 0 if process is None else process.jobs

    async def run(
        self, model: LanguageModel, call: ModelCall, gone: Any = None, budget: float = float("inf")
    ) -> Any:
        """`call` on `model` in the least busy process; `gone` (anything with `is_set()`) is
        looked at every `GONE_POLL_SECONDS` and passed on. ProcessLost when the process dies."""
        number = min(range(self.count), key=self.jobs)
        process = self._process(number)
        process.watch(asyncio.get_running_loop(), self._lost)
        slot, job_id = self.free_slots.pop(), next(self.job_ids)
        job = asyncio.get_running_loop().create_future()
        job.add_done_callback(lambda _: self._finished(slot))
        process.send(job_id, job, (_run, (model.name, call, slot, budget)), self._lost)
        try:
            while True:
                done, _ = await asyncio.wait({job}, timeout=GONE_POLL_SECONDS)
                if done:
                    return job.result()
                if gone is not None and gone.is_set():
                    self.gone_flags[slot] = 1
        except asyncio.CancelledError:  # nobody waits for the answer any more
            self.gone_flags[slot] = 1
            raise

    def _finished(self, slot: int) -> None:
        self.gone_flags[slot] = 0
        self.free_slots.append(slot)

    def _lost(self, process: _Process) -> None:
        """`process` died (e.g. killed for memory): its jobs get ProcessLost, and the next job for
        its place starts another (not at once: a process that cannot start would start forever)."""
        if process not in self.processes:  # already reported (its reader and its writer both may)
            return
        number = self.processes.index(process)
        log.error("a model process stopped; its jobs answer 503, and the next job starts another")
        self.processes[number] = None
        process.stop(wait=1.0)

    def close(self) -> None:
        for number, process in enumerate(self.processes):
            if process is not None:
                process.stop(wait=10.0)
            self.processes[number] = None
