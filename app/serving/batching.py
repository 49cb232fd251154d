"""Micro-batching: /sample requests that arrive together share one sampling pass.

A request queues its (n, seed) under its model and `SamplingParams` and waits. The first request
of a loop turn schedules a flush as a task, which runs once the requests already parsed in this
turn have queued too: a lone request waits for nothing, concurrent ones are drawn in one array
pass. Only models whose rows are independent of their batch (an exact table) are batched, so each
request still gets exactly the names it would get alone (`LanguageModel.sample_batch`). The
runner decides whether a batch is drawn on the event loop or on a worker thread.

Bounds: one pass draws at most `MAX_BATCH_NAMES` names (more requests of one setting are split
into several passes, so a burst does not grow one pass's buffers without limit), and one flush
draws at most `knobs.INLINE_MAX_NAMES` names on the event loop in all: a burst of requests with
many distinct settings (each small enough to run inline alone) goes to the workers once that
budget is spent, instead of holding the loop for one pass after another.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from app.http.metrics import observe_batch
from app.serving.workers import ModelRunner
from model.engine import knobs
from model.engine.language_model import LanguageModel, Sample
from model.engine.params import SamplingParams

BatchKey = tuple[str, SamplingParams]  # model name, params
Job = tuple[int, int | None, asyncio.Future]  # n, seed, where the names go

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


class SampleBatcher:
    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self.pending: defaultdict[BatchKey, list[Job]] = defaultdict(list)
        self.models: dict[str, LanguageModel] = {}
        self.flush_task: asyncio.Task | None = None

    async def sample(
        self, model: LanguageModel, n: int, seed: int | None, params: SamplingParams
    ) -> list[Sample]:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.models[model.name] = model
        self.pending[model.name, params].append((n, seed, future))
        if self.flush_task is None:
            self.flush_task = asyncio.create_task(self.flush())
        return await future

    async def flush(self) -> None:
        pending, self.pending, self.flush_task = self.pending, defaultdict(list), None
        inline_budget = knobs.INLINE_MAX_NAMES  # names this flush may still draw on the event loop
        off_loop = []
        for (name, params), all_jobs in pending.items():
            model = self.models[name]
            for jobs in passes(all_jobs):
                names = sum(job[0] for job in jobs)
                observe_batch(len(jobs), names)
                if names <= inline_budget and model.is_quick(names):
                    inline_budget -= names
                    await self.draw(model, params, jobs, inline=True)
                else:  # the workers draw these side by side
                    off_loop.append(self.draw(model, params, jobs, inline=False))
        await asyncio.gather(*off_loop)

    async def draw(self, model: LanguageModel, params: SamplingParams, jobs: list[Job], inline: bool) -> None:
        """One pass for `jobs`: each future gets its names, or every future the pass's error."""
        requests = [(n, seed) for n, seed, _ in jobs]
        try:
            results = await self.runner.run(
                model, lambda: model.sample_batch(requests, params), names=sum(n for n, _ in requests),
                inline=inline,
            )  # fmt: skip
        except Exception as exc:  # handed to every waiting request, never lost in a task
            for *_, future in jobs:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), samples in zip(jobs, results, strict=True):
            if not future.done():
                future.set_result(samples)
