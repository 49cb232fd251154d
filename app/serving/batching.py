"""Micro-batching: /sample requests that arrive together share one sampling pass (and short /loss
and /next-char requests to a forward-pass model one scoring pass: `ScoringBatcher`).

A request queues its (n, seed) under its model and `SamplingParams` and waits. The first request
of a loop turn schedules a flush as a task, which runs once the requests already parsed in this
turn have queued too: a lone request waits for nothing, concurrent ones are drawn in one array
pass. Only models whose batching is "exact" are batched: a table, whose rows are independent of
their batch, or a forward pass whose start-up self-test found batch-invariant steps (padded to a
minimum of rows, in chunks: `model.engine.invariance`), so each request still gets exactly the
names it would get alone (`LanguageModel.sample_batch`). The
runner decides whether a batch is drawn on the event loop, in a model process or on a worker thread.

Bounds: one pass draws at most `MAX_BATCH_NAMES` names (more requests of one setting are split
into several passes, so a burst does not grow one pass's buffers without limit; a forward-pass
model's batch is cut into as many passes as may start (`ModelRunner.passes_now`), each of at least
`knobs.SPLIT_PASS_MIN_NAMES` names, so every core draws), and the event loop
draws at most `knobs.INLINE_MAX_NAMES` names every `INLINE_WINDOW` seconds, however many flushes
(loop turns) that spans: a burst goes to the workers once that budget is spent, instead of holding
the loop for one pass after another. A forward-pass model starts no pass while one of its flushes
is in flight (a flush may split a big batch over the workers): requests that arrive meanwhile wait
and join the next pass, so under load its passes grow (16 concurrent one-name GRU requests at
c=16, their passes on a worker: 9 a pass on average, against 6 with a pass per worker in flight and
5 without holding; passes of at most `knobs.INLINE_MAX_NUMPY_NAMES` names run inline and hold all
16). In model processes a model has up to two passes per process in flight instead
(`ModelRunner.passes_now`): one computing, one queued, so a process does not idle while the loop
answers its last pass (`/sample` n=100 at c=16: 35,600 names/s against 32,600 holding, 4 rounds).
A request whose client has gone (its `gone` event, set by the HTTP layer) leaves the batch
before its pass is drawn; a pass on a worker whose every client has gone is not drawn.
"""

from __future__ import annotations

import asyncio
import math
import threading
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from app.http.metrics import observe_batch
from app.serving.processes import ModelCall
from app.serving.workers import ModelRunner
from model.engine import knobs
from model.engine.cancel import Cancelled
from model.engine.language_model import Condition, LanguageModel, NextChar, Sample, WordScore
from model.engine.params import SamplingParams

BatchKey = tuple[str, SamplingParams]  # model name, params
Job = tuple[int, int | None, asyncio.Future, threading.Event | None]  # n, seed, where the names go, gone

INLINE_WINDOW = 0.02  # seconds: the loop draws at most knobs.INLINE_MAX_NAMES names in each
SETTLE_TURNS = 4  # loop turns a flush waits, at most, for the rest of a burst of requests
MAX_BATCH_NAMES = 4096  # names drawn in one pass at most (a request asks for at most 1000)


def passes(jobs: list[Job], most: int = MAX_BATCH_NAMES) -> list[list[Job]]:
    """`jobs` in order, cut into passes of at most `most` names (a bigger lone job is its own pass)."""
    chunks: list[list[Job]] = [[]]
    names = 0
    for job in jobs:
        if chunks[-1] and names + job[0] > most:
            chunks.append([])
            names = 0
        chunks[-1].append(job)
        names += job[0]
    return chunks


class _Batcher(ABC):
    """Jobs queued per key (its first item a model name) until the loop's next turn, and the gate
    that holds a forward-pass model's jobs while one of its passes is in flight."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self.pending: defaultdict[Any, list] = defaultdict(list)
        self.models: dict[str, LanguageModel] = {}
        self.flush_task: asyncio.Task | None = None
        self.in_flight: Counter[str] = Counter()  # passes started and not finished, per model

    def enqueue(self, model: LanguageModel, key: tuple, job: tuple) -> None:
        self.models[model.name] = model
        self.pending[key].append(job)
        self._schedule()

    def _schedule(self) -> None:
        if self.flush_task is None and self.pending:
            self.flush_task = asyncio.create_task(self.flush())

    @abstractmethod
    async def flush(self) -> None:
        """Start a pass for every key `take` allows."""

    async def settled(self) -> dict[Any, list]:
        """`take`, once a loop turn adds no job (at most `SETTLE_TURNS` turns): the requests read in
        one burst of socket reads reach the batcher a turn or two after the first (each handler
        runs as its own task, queued behind the flush), so waiting for them makes one pass of the
        burst instead of a pass for the first request and another for the rest."""
        count = -1
        for _ in range(SETTLE_TURNS):
            now = sum(len(jobs) for jobs in self.pending.values())
            if now == count:
                break
            count = now
            await asyncio.sleep(0)
        return self.take()

    def take(self) -> dict[Any, list]:
        """The pending jobs whose model may start a pass now; the others stay pending until one of
        their model's passes finishes (a table's rows are never held: its passes are instant)."""
        pending, self.pending, self.flush_task = self.pending, defaultdict(list), None
        ready = {}
        for key, jobs in pending.items():
            model = self.models[key[0]]
            if not model.rows_independent and not self.runner.passes_now(model, self.in_flight[model.name]):
                self.pending[key] = jobs
            else:
                ready[key] = jobs
        return ready

    async def run_pass(
        self,
        model: LanguageModel,
        jobs: list,
        call: ModelCall,
        shares: Callable[[list], list],
        **run: Any,
    ) -> None:
        """`call` as one pass of `model` for `jobs` (each ending in its future and its `gone`
        event) through the runner (`run`: its names/words, inline, budget): each future gets its
        share of the answers (`shares`), or every future the pass's error. The pass is dropped only
        when every client has gone."""
        events = [job[-1] for job in jobs]
        gone = _AllGone(events) if all(e is not None for e in events) else None
        try:
            with self.one_pass(model):
                answers = await self.runner.run(model, call, gone=gone, **run)
        except Exception as exc:  # handed to every waiting request, never lost in a task
            for job in jobs:
                if not job[-2].done():
                    job[-2].set_exception(exc)
            return
        for job, share in zip(jobs, shares(answers), strict=True):
            if not job[-2].done():
                job[-2].set_result(share)

    @contextmanager
    def one_pass(self, model: LanguageModel) -> Iterator[None]:
        """Counts a pass of `model` in flight; when it ends, the jobs it held back are flushed."""
        self.in_flight[model.name] += 1
        try:
            yield
        finally:
            self.in_flight[model.name] -= 1
            self._schedule()


class SampleBatcher(_Batcher):
    def __init__(self, runner: ModelRunner) -> None:
        super().__init__(runner)
        self.window_start = -INLINE_WINDOW
        self.inline_spent = 0  # names drawn on the loop since `window_start`

    async def sample(
        self,
        model: LanguageModel,
        n: int,
        seed: int | None,
        params: SamplingParams,
        gone: threading.Event | None = None,
    ) -> list[Sample]:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.enqueue(model, (model.name, params), (n, seed, future, gone))
        return await future

    async def flush(self) -> None:
        off_loop = []
        for (name, params), all_jobs in (await self.settled()).items():
            model = self.models[name]
            wanted = _still_wanted(all_jobs)
            most = MAX_BATCH_NAMES
            if not model.rows_independent:  # a forward pass: spread big batches over the workers
                total = sum(job[0] for job in wanted)
                lanes = self.runner.passes_now(model, self.in_flight[model.name])
                most = min(most, max(knobs.SPLIT_PASS_MIN_NAMES, -(-total // lanes)))
            for jobs in passes(wanted, most):
                if not jobs:
                    continue
                names = sum(job[0] for job in jobs)
                observe_batch(len(jobs), names)
                if names <= self.inline_left() and model.is_quick(names):
                    self.inline_spent += names
                    await self.draw(model, params, jobs, inline=True)
                else:  # the workers draw these side by side
                    off_loop.append(self.draw(model, params, jobs, inline=False))
        await asyncio.gather(*off_loop)

    def inline_left(self) -> int:
        """Names the event loop may still draw in the current `INLINE_WINDOW`."""
        now = asyncio.get_running_loop().time()
        if now - self.window_start >= INLINE_WINDOW:
            self.window_start, self.inline_spent = now, 0
        return knobs.INLINE_MAX_NAMES - self.inline_spent

    async def draw(self, model: LanguageModel, params: SamplingParams, jobs: list[Job], inline: bool) -> None:
        """One pass for `jobs`: each future gets its names, or every future the pass's error."""
        requests = [(job[0], job[1]) for job in jobs]
        # A forward pass's cost bound: each request was admitted under its own bound
        # (`LanguageModel.plain_sample_seconds`), so the pass's is their sum (never met).
        budget = (
            math.inf
            if model.rows_independent
            else 1.001 * sum(model.plain_sample_seconds(n, params) for n, _ in requests)
        )
        names = sum(n for n, _ in requests)
        await self.run_pass(
            model,
            jobs,
            ModelCall("sample_batch", (requests, params)),
            list,
            names=names,
            inline=inline,
            budget=budget,
        )


def _still_wanted(jobs: list) -> list:
    """The jobs (each ending in its future and its `gone` event) whose client is still there; the
    others' futures get Cancelled (answered 499)."""
    wanted = []
    for job in jobs:
        future, gone = job[-2], job[-1]
        if gone is not None and gone.is_set():
            if not future.done():
                future.set_exception(
                    Cancelled("the client closed the connection before its answer was computed")
                )
        else:
            wanted.append(job)
    return wanted


class _AllGone:
    """Set when every one of `events` is: a shared pass is dropped only when nobody wants it."""

    def __init__(self, events: list[threading.Event]) -> None:
        self.events = events

    def is_set(self) -> bool:
        return all(event.is_set() for event in self.events)


TextJob = tuple[list[str], asyncio.Future, threading.Event | None]  # texts, where answers go, gone
Scoring = Literal["loss", "next-char"]


class ScoringBatcher(_Batcher):
    """Short /loss requests and /next-char requests to a forward-pass model whose batching is
    "exact" that arrive together are computed in one scoring pass (`LanguageModel.word_losses` over
    all their words, `LanguageModel.next_chars` over all their prefixes), as `SampleBatcher` draws
    names: a word's scores and a prefix's distribution do not depend on the texts computed with
    them once the model's self-test passed. Each request's text was checked (a bad one answers that
    request alone, before it queues) and its cost estimated against the budget up front (the
    route's 422), so the pass's budget is the sum of theirs and never met."""

    async def word_losses(
        self,
        model: LanguageModel,
        words: list[str],
        condition: Condition = None,
        gone: threading.Event | None = None,
    ) -> list[WordScore]:
        model.encode_words(words)  # a ParameterError naming this request's bad words, before it queues
        return await self._queued(model, "loss", words, condition, gone)

    async def next_char(
        self,
        model: LanguageModel,
        prefix: str,
        condition: Condition = None,
        gone: threading.Event | None = None,
    ) -> NextChar:
        model.encode(prefix, "prefix")  # a ParameterError at "prefix", before it queues
        return (await self._queued(model, "next-char", [prefix], condition, gone))[0]

    async def _queued(
        self,
        model: LanguageModel,
        kind: Scoring,
        texts: list[str],
        condition: Condition,
        gone: threading.Event | None,
    ) -> list:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.enqueue(model, (model.name, model.condition_id(condition), kind), (texts, future, gone))
        return await future

    async def flush(self) -> None:
        ready = await self.settled()
        await asyncio.gather(
            *(self.compute(self.models[key[0]], *key[1:], jobs) for key, jobs in ready.items())
        )

    async def compute(
        self, model: LanguageModel, condition_id: int, kind: Scoring, all_jobs: list[TextJob]
    ) -> None:
        """One pass for the jobs still wanted: each future gets its answers, or all the pass's error."""
        jobs = _still_wanted(all_jobs)
        if not jobs:
            return
        texts = [text for job in jobs for text in job[0]]
        condition = model.condition_of(condition_id)
        # a prefix costs what scoring it as a word costs: the same steps, '.' first
        budget = 1.001 * sum(model.scoring_seconds(job[0], condition=condition) for job in jobs)
        call = ModelCall("word_losses" if kind == "loss" else "next_chars", (texts, condition))
        # prefixes with a cached start state cost nothing: such a pass runs inline
        count = len(texts) if kind == "loss" else model.uncached_prefixes(texts, condition)
        bounds = np.cumsum([0] + [len(job[0]) for job in jobs]).tolist()

        def shares(answers: list) -> list:
            return [answers[a:b] for a, b in pairwise(bounds)]

        await self.run_pass(model, jobs, call, shares, words=count, budget=budget)
