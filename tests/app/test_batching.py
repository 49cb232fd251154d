"""Concurrent /sample requests share a sampling pass and still get their own seeded names."""

import asyncio

import pytest

from app.serving.batching import SampleBatcher
from app.serving.workers import ModelRunner
from model.engine import knobs
from model.engine.params import ParameterError, SamplingParams


@pytest.mark.parametrize("inline_max_names", [10_000, 0])  # drawn on the loop / on a worker
def test_concurrent_requests_are_batched_and_each_gets_its_own_names(
    tiny_model, inline_max_names, monkeypatch
):
    monkeypatch.setattr(knobs, "INLINE_MAX_NAMES", inline_max_names)
    batcher = SampleBatcher(ModelRunner(threads=2, max_queue=16))
    calls = []
    original = tiny_model.sample_batch

    def spy(requests, params):
        calls.append(list(requests))
        return original(requests, params)

    plain, other = SamplingParams(), SamplingParams(temperature=0.5, top_k=3, prefix="ka", max_length=10)
    greedy = SamplingParams(temperature=0.0, prefix="b")
    requests = [(3, 1, plain), (50, 2, plain), (4, 3, other), (6, 4, greedy), (2, 5, greedy)]

    async def run_all():
        tiny_model.sample_batch = spy
        try:
            return await asyncio.gather(*(batcher.sample(tiny_model, n, seed, p) for n, seed, p in requests))
        finally:
            del tiny_model.sample_batch

    results = asyncio.run(run_all())
    # one pass per distinct setting (on the workers, passes run side by side: in any order)
    assert sorted(calls) == sorted([[(3, 1), (50, 2)], [(4, 3)], [(6, 4), (2, 5)]])
    for (n, seed, params), got in zip(requests, results, strict=True):
        alone = tiny_model.sample(n, params, seed).names
        assert [s.name for s in got] == [s.name for s in alone]
    assert len({s.name for s in results[3] + results[4]}) == 1  # greedy: one name, whatever the seed


def test_an_error_reaches_every_waiting_request(tiny_model):
    batcher = SampleBatcher(ModelRunner(threads=2, max_queue=16))

    async def run_all():
        bad = SamplingParams(prefix="q!")  # '!' is outside the alphabet
        return await asyncio.gather(
            batcher.sample(tiny_model, 2, 1, bad),
            batcher.sample(tiny_model, 3, 2, bad),
            return_exceptions=True,
        )

    errors = asyncio.run(run_all())
    assert all(isinstance(e, ParameterError) and "'!'" in str(e) for e in errors)
