"""Micro-batching: /sample requests that arrive together share one sampling pass.

A request queues its (n, seed) under its settings and waits. The first request of a loop turn
schedules a flush with `call_soon`, so it runs once the requests already parsed in this turn have
queued too: a lone request waits for nothing, concurrent ones are drawn in one array pass. Each
request still gets exactly the names it would get alone (`LanguageModel.sample_scored_many`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from model.inference import LanguageModel

Settings = tuple[float, int | None, str, int]  # temperature, top_k, prefix, max_length
Job = tuple[int, int | None, asyncio.Future]  # n, seed, where the names go


class SampleBatcher:
    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.pending: defaultdict[Settings, list[Job]] = defaultdict(list)
        self.flush_scheduled = False

    async def sample(self, n: int, seed: int | None, settings: Settings) -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self.pending[settings].append((n, seed, future))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            loop.call_soon(self.flush)
        return await future

    def flush(self) -> None:
        pending, self.pending, self.flush_scheduled = self.pending, defaultdict(list), False
        for (temperature, top_k, prefix, max_length), jobs in pending.items():
            try:
                results = self.model.sample_scored_many(
                    [(n, seed) for n, seed, _ in jobs], temperature, top_k, prefix, max_length
                )
            except Exception as exc:  # handed to every waiting request, never lost in a callback
                for *_, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), scored in zip(jobs, results, strict=True):
                if not future.done():
                    future.set_result(scored)
