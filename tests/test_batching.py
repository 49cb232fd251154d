"""Concurrent /sample requests share a sampling pass and still get their own seeded names."""

import asyncio

import pytest

from app.batching import SampleBatcher
from app.workers import ModelRunner


@pytest.mark.parametrize("inline_max_names", [10_000, 0])  # drawn on the loop / on a worker
def test_concurrent_requests_are_batched_and_each_gets_its_own_names(tiny_model, inline_max_names):
    batcher = SampleBatcher(ModelRunner(tiny_model), inline_max_names)
    calls = []
    original = tiny_model.sample_scored_many

    def spy(requests, *args):
        calls.append(list(requests))
        return original(requests, *args)

    requests = [(3, 1, (1.0, None, "", 32)), (50, 2, (1.0, None, "", 32)), (4, 3, (0.5, 3, "ka", 10))]

    async def run_all():
        tiny_model.sample_scored_many = spy
        try:
            return await asyncio.gather(*(batcher.sample(n, seed, s) for n, seed, s in requests))
        finally:
            del tiny_model.sample_scored_many

    results = asyncio.run(run_all())
    assert calls == [[(3, 1), (50, 2)], [(4, 3)]]  # one pass per distinct setting
    for (n, seed, (temperature, top_k, prefix, max_length)), got in zip(requests, results, strict=True):
        alone = tiny_model.sample_scored(n, temperature, top_k, prefix, max_length, seed)
        assert [name for name, _ in got] == [name for name, _ in alone]


def test_an_error_reaches_every_waiting_request(tiny_model):
    batcher = SampleBatcher(ModelRunner(tiny_model), 10_000)

    async def run_all():
        bad = (1.0, None, "q!", 32)  # '!' is outside the alphabet
        return await asyncio.gather(
            batcher.sample(2, 1, bad), batcher.sample(3, 2, bad), return_exceptions=True
        )

    errors = asyncio.run(run_all())
    assert all(isinstance(e, ValueError) and "'!'" in str(e) for e in errors)
