"""Micro-batching: /sample requests that arrive together share one sampling pass.

A request queues its (n, seed) under its model and `SamplingParams` and waits. The first request
of a loop turn schedules a flush as a task, which runs once the requests already parsed in this
turn have queued too: a lone request waits for nothing, concurrent ones are drawn in one array
pass. Only models whose rows are independent of their batch (an exact table) are batched, so each
request still gets exactly the names it would get alone (`LanguageModel.sample_batch`). The
runner decides whether a batch is drawn on the event loop or on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from app.metrics import observe_batch
from app.workers import ModelRunner
from model.engine.language_model import LanguageModel, Sample
from model.engine.params import SamplingParams

BatchKey = tuple[str, SamplingParams]  # model name, params
Job = tuple[int, int | None, asyncio.Future]  # n, seed, where the names go


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
        for (name, params), jobs in pending.items():
            model = self.models[name]
            requests = [(n, seed) for n, seed, _ in jobs]
            observe_batch(len(requests), sum(n for n, _ in requests))
            try:
                results = await self.runner.run(
                    model,
                    lambda m=model, r=requests, p=params: m.sample_batch(r, p),
                    names=sum(n for n, _ in requests),
                )
            except Exception as exc:  # handed to every waiting request, never lost in a task
                for *_, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), samples in zip(jobs, results, strict=True):
                if not future.done():
                    future.set_result(samples)
