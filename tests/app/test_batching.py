"""Concurrent /sample requests share a sampling pass and still get their own seeded names."""

import asyncio
import random

import pytest

from app.serving.batching import SampleBatcher, ScoringBatcher
from app.serving.service import Service
from app.serving.workers import ModelRunner
from model.engine import knobs
from model.engine.language_model import LanguageModel
from model.engine.params import ParameterError, SamplingParams


def fresh_service(base: Service) -> Service:
    """The app's models behind new batchers and a new runner (2 workers, 256 queued): no state
    shared with other tests' requests."""
    runner = ModelRunner(threads=2, max_queue=256)
    return Service(
        base.settings, base.models, base.default_name, runner, SampleBatcher(runner), ScoringBatcher(runner)
    )


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


def test_64_concurrent_mixed_seeded_requests_get_the_bytes_they_get_alone(client):
    """Issue 19: concurrent plain requests to every committed model (forward passes batched once
    their self-test passed), mixed sizes, prefixes and shaping, each exactly its lone answer; the
    forward-pass models that pass really share passes."""
    service = fresh_service(client.app.state.service)
    names = ["names-gru", "names-transformer", "names-wavenet", "names-mlp", "names-gru-gender"]
    models = [service.models[name] for name in names]
    rng = random.Random(19)
    settings = [SamplingParams(), SamplingParams(prefix="ma"), SamplingParams(temperature=0.7, top_k=5)]
    requests = [
        (rng.choice(models), rng.choice([1, 1, 1, 2, 5, 40, 300]), rng.choice(settings), rng.randrange(2**63))
        for _ in range(64)
    ]
    passes: dict[str, list[int]] = {name: [] for name in names}

    def spying(model):
        original = model.sample_batch

        def spy(batch, params):
            passes[model.name].append(len(batch))
            return original(batch, params)

        return spy

    async def together():
        for model in models:
            model.sample_batch = spying(model)
        try:
            return await asyncio.gather(
                *(service.sample(model, n, params, seed, novel=False) for model, n, params, seed in requests)
            )
        finally:
            for model in models:
                del model.sample_batch

    results = asyncio.run(together())
    for (model, n, params, seed), got in zip(requests, results, strict=True):
        alone = model.sample(n, params, seed).names
        assert got.names == alone, (model.name, n, params, seed)
    for model in models:
        if model.batching == "exact":
            assert max(passes[model.name]) > 1, model.name  # some pass served several requests
        else:
            assert passes[model.name] == []  # each request computed by itself
    # a table is always exact; the forward passes' verdicts are this machine's BLAS's (on the
    # development machine every one is "exact"), pinned per platform by the golden digests
    assert service.models["names-mlp"].batching == "exact"


def test_concurrent_short_loss_requests_share_a_pass_and_get_their_own_scores(client):
    """Short /loss requests to a forward-pass model whose batching is exact are scored together:
    each gets the bytes it gets alone, and a bad word fails only its own request, by its index."""
    service = fresh_service(client.app.state.service)
    gru, gender = service.models["names-gru"], service.models["names-gru-gender"]
    assert gru.batching == "exact"
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    requests = [
        (
            rng.choice([gru, gender]),
            [
                "".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
                for _ in range(rng.randint(1, 4))
            ],
            rng.choice([None, {"gender": "female"}]),
        )
        for _ in range(40)
    ]
    requests = [(m, words, cond if m is gender else None) for m, words, cond in requests]
    requests.append((gru, ["emma", "x1z"], None))  # its bad word is its own
    passes = []
    original = gru.word_losses

    def spy(words, condition=None):
        passes.append(len(words))
        return original(words, condition)

    async def together():
        gru.word_losses = spy
        try:
            return await asyncio.gather(
                *(service.word_losses(m, words, cond) for m, words, cond in requests), return_exceptions=True
            )
        finally:
            del gru.word_losses

    results = asyncio.run(together())
    for (model, words, cond), got in zip(requests[:-1], results, strict=False):
        alone = model.word_losses(words, cond)
        assert [(s.word, s.nlls) for s in got] == [(s.word, s.nlls) for s in alone], (model.name, cond, words)
    assert isinstance(results[-1], ParameterError) and results[-1].problems[0][0] == (1,)
    assert max(passes) > 4  # several requests' words in one pass


def test_concurrent_next_char_requests_share_a_pass_and_get_their_own_bytes(client):
    """/next-char requests to a forward-pass model whose batching is exact are read together (fresh
    prefixes in one pass, cached ones from their start state): each distribution is the bytes of
    the same request alone, and a bad prefix fails only its own request, at "prefix"."""
    service = fresh_service(client.app.state.service)
    gru, gender = service.models["names-gru"], service.models["names-gru-gender"]
    assert gru.batching == gender.batching == "exact"
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    requests = [
        (model, "".join(rng.choice(letters) for _ in range(rng.randint(0, 9))), condition)
        for model, condition in [(gru, None), (gender, None), (gender, {"gender": "male"})] * 12
    ]
    requests.append((gru, "an", None))  # likely cached: read from its start state
    requests.append((gru, "b2", None))
    passes = []
    original = gru.next_chars

    def spy(prefixes, condition=None):
        passes.append(len(prefixes))
        return original(prefixes, condition)

    async def together():
        gru.next_chars = spy
        try:
            return await asyncio.gather(
                *(service.next_char(m, prefix, cond) for m, prefix, cond in requests), return_exceptions=True
            )
        finally:
            del gru.next_chars

    results = asyncio.run(together())
    alone_models = {}  # a second instance of each model: every answer computed alone, from its own caches
    for model in (gru, gender):
        alone_models[model.name] = LanguageModel(model.checkpoint, model.device, name=model.name)
        alone_models[model.name].check_batching()
    for (model, prefix, cond), got in zip(requests[:-1], results, strict=False):
        alone = alone_models[model.name].next_char(prefix, cond)
        assert got.prefix == alone.prefix and got.probs.tobytes() == alone.probs.tobytes(), (
            model.name,
            prefix,
        )
        assert got.probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert isinstance(results[-1], ParameterError) and results[-1].problems[0][0] == ("prefix",)
    assert max(passes) > 4  # several requests' prefixes in one pass


def test_models_say_whether_they_are_batched(client):
    """GET /models carries each model's self-test verdict: tables are "exact" without a test."""
    service = client.app.state.service
    listed = {info["name"]: info["batching"] for info in client.get("/models").json()["models"]}
    assert listed == {name: model.batching for name, model in service.models.items()}
    assert listed["names-mlp"] == listed["names-bigram"] == "exact"
    assert set(listed.values()) <= {"exact", "off"}
    assert client.get("/models/names-gru").json()["batching"] == service.models["names-gru"].batching


def test_a_big_forward_batch_is_spread_over_the_workers(client):
    """Eight n=200 requests to the GRU at once: two passes of 800 names (one per worker), each
    request still its lone answer."""
    base = client.app.state.service
    runner = ModelRunner(threads=2, max_queue=64)
    batcher = SampleBatcher(runner)
    gru = base.models["names-gru"]
    assert gru.batching == "exact"
    sizes = []
    original = gru.sample_batch

    def spy(requests, params):
        sizes.append(sum(n for n, _ in requests))
        return original(requests, params)

    async def together():
        gru.sample_batch = spy
        try:
            return await asyncio.gather(
                *(batcher.sample(gru, 200, seed, SamplingParams()) for seed in range(8))
            )
        finally:
            del gru.sample_batch

    results = asyncio.run(together())
    assert sizes == [800, 800]
    assert results == [gru.sample(200, SamplingParams(), seed).names for seed in range(8)]


def test_a_forward_batch_is_split_only_into_passes_of_a_useful_size(client, monkeypatch):
    """Passes of fewer than `knobs.SPLIT_PASS_MIN_NAMES` names are not worth a core each: five
    n=100 requests with two workers free are one pass of 500 at 512, three (200, 200, 100) at 256."""
    gru = client.app.state.service.models["names-gru"]
    sizes: list[int] = []
    original = gru.sample_batch

    def spy(requests, params):
        sizes.append(sum(n for n, _ in requests))
        return original(requests, params)

    async def together():
        batcher = SampleBatcher(ModelRunner(threads=2, max_queue=64))
        gru.sample_batch = spy
        try:
            return await asyncio.gather(
                *(batcher.sample(gru, 100, seed, SamplingParams()) for seed in range(5))
            )
        finally:
            del gru.sample_batch

    for floor, expected in [(512, [500]), (256, [200, 200, 100])]:
        monkeypatch.setattr(knobs, "SPLIT_PASS_MIN_NAMES", floor)
        sizes.clear()
        results = asyncio.run(together())
        assert sorted(sizes, reverse=True) == expected
        assert results == [gru.sample(100, SamplingParams(), seed).names for seed in range(5)]


def test_requests_arriving_while_a_forward_pass_runs_join_the_next_pass(client):
    """One worker: the first request's pass is in flight, so the seven that follow one by one wait
    and are drawn together in one pass (not seven passes queued behind it), each its lone answer."""
    gru = client.app.state.service.models["names-gru"]
    assert gru.batching == "exact"
    batcher = SampleBatcher(ModelRunner(threads=1, max_queue=64))
    passes = []
    original = gru.sample_batch

    def spy(requests, params):
        passes.append([seed for _, seed in requests])
        return original(requests, params)

    async def staggered():
        gru.sample_batch = spy
        try:
            first = asyncio.create_task(batcher.sample(gru, 300, 0, SamplingParams()))
            while not batcher.in_flight[gru.name]:  # the first pass has started on the worker
                await asyncio.sleep(0)
            rest = []
            for seed in range(1, 8):  # one by one, each in its own loop turns (its own flush)
                rest.append(asyncio.create_task(batcher.sample(gru, 1, seed, SamplingParams())))
                for _ in range(3):
                    await asyncio.sleep(0)
            return await asyncio.gather(first, *rest)
        finally:
            del gru.sample_batch

    results = asyncio.run(staggered())
    assert passes == [[0], list(range(1, 8))]
    assert results == [gru.sample(300 if seed == 0 else 1, SamplingParams(), seed).names for seed in range(8)]
