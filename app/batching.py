"""Micro-batching: /sample requests that arrive together share one sampling pass.

A request queues its (n, seed) under its settings and waits. The first request of a loop turn
schedules a flush as a task, which runs once the requests already parsed in this turn have queued
too: a lone request waits for nothing, concurrent ones are drawn in one array pass. Each request
still gets exactly the names it would get alone (`LanguageModel.sample_scored_many`). A batch of
up to `inline_max_names` names is drawn on the event loop (microseconds to a few milliseconds);
a bigger one on a worker thread (`app.workers`), so it never holds up the loop for long.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from app.workers import ModelRunner

Settings = tuple[float, int | None, str, int]  # temperature, top_k, prefix, max_length
Job = tuple[int, int | None, asyncio.Future]  # n, seed, where the names go


class SampleBatcher:
    def __init__(self, runner: ModelRunner, inline_max_names: int) -> None:
        self.runner = runner
        self.inline_max_names = inline_max_names
        self.pending: defaultdict[Settings, list[Job]] = defaultdict(list)
        self.flush_task: asyncio.Task | None = None

    async def sample(self, n: int, seed: int | None, settings: Settings) -> list[tuple[str, float]]:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending[settings].append((n, seed, future))
        if self.flush_task is None:
            self.flush_task = asyncio.create_task(self.flush())
        return await future

    async def flush(self) -> None:
        pending, self.pending, self.flush_task = self.pending, defaultdict(list), None
        for (temperature, top_k, prefix, max_length), jobs in pending.items():
            requests = [(n, seed) for n, seed, _ in jobs]

            def draw(requests=requests, args=(temperature, top_k, prefix, max_length)):
                return self.runner.model.sample_scored_many(requests, *args)

            try:
                small = sum(n for n, _ in requests) <= self.inline_max_names
                results = await self.runner.run(small, draw)
            except Exception as exc:  # handed to every waiting request, never lost in a task
                for *_, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), scored in zip(jobs, results, strict=True):
                if not future.done():
                    future.set_result(scored)
