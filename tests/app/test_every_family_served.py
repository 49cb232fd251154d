"""Every committed family through the service: the same contract, checked against independent maths."""

import asyncio
import math
from collections import Counter

import httpx
import numpy as np
import pytest
import torch

from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.families import build_model
from tests.conftest import ROOT

MODELS = sorted(p.stem for p in (ROOT / "weights").glob("*.safetensors"))


@pytest.fixture(scope="module")
def models() -> dict[str, LanguageModel]:
    return {
        name: LanguageModel.from_checkpoint(ROOT / "weights" / f"{name}.safetensors", "cpu")
        for name in MODELS
    }


def test_every_family_is_committed():
    assert {name.removeprefix("names-") for name in MODELS} >= {
        "bigram",
        "mlp",
        "wavenet",
        "gru",
        "transformer",
    }


@pytest.mark.parametrize("name", MODELS)
def test_engine_steps_equal_the_teacher_forced_forward_pass(models, name):
    """The engine's log-probabilities (table, NumPy or torch steps) against the family's own
    whole-sequence forward pass in float64, at every position of a few words."""
    model = models[name]
    network = build_model(model.checkpoint).double()
    for word in ["emma", "x", "maximilianalexander", "zzyzx"]:
        ids = [0, *model.vocab.encode(word)]
        with torch.inference_mode():
            expected = torch.log_softmax(network.sequence_logits(torch.tensor([ids]))[0], dim=-1).numpy()
        for t in range(len(ids)):
            got = np.log(model.next_char(word[:t]).probs)
            np.testing.assert_allclose(got, expected[t], atol=1e-5, rtol=0)
        scored = model.word_losses([word])[0]
        targets = [*ids[1:], 0]
        np.testing.assert_allclose(scored.nlls, -expected[np.arange(len(ids)), targets], atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("prefix", ["", "ma", "kri"])
def test_samples_follow_the_exact_next_character_distribution(models, name, prefix):
    """Chi-square of the character after `prefix` over 4,000 samples against exact probabilities
    (names never empty: with no prefix the end token is excluded from the first draw)."""
    model = models[name]
    n = 4000
    names = model.sample(n, SamplingParams(prefix=prefix, max_length=len(prefix) + 1), seed=11).names
    counts = Counter(s.name[len(prefix) :] or "." for s in names)
    observed = np.array([counts.get(c, 0) for c in model.vocab.alphabet], dtype=np.float64)
    probs = model.next_char(prefix).probs
    if not prefix:
        probs = probs.copy()
        probs[0] = 0.0
        probs /= probs.sum()
    expected = probs * n
    assert observed[expected == 0].sum() == 0
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


@pytest.mark.parametrize("name", MODELS)
def test_loss_over_http_is_the_mean_of_minus_log_next_char(client, name):
    word = "olivia"
    expected = []
    for i, char in enumerate(word + "."):
        body = client.post("/next-char", json={"model": name, "prefix": word[:i]}).json()
        probs = {e["char"]: e["prob"] for e in body["distribution"]}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
        expected.append(-math.log(probs[char]))
    body = client.post("/loss", json={"model": name, "word": word}).json()
    assert [c["nll"] for c in body["chars"]] == pytest.approx(expected, abs=1e-6)
    assert body["loss"] == pytest.approx(sum(expected) / len(expected), abs=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_sampled_losses_and_flags_hold_for_every_family(client, name):
    body = client.post(
        "/sample", json={"model": name, "n": 50, "seed": 3, "max_length": 6, "top_p": 0.9}
    ).json()
    assert body["model"] == name and len(body["names"]) == 50
    words = [entry["name"] for entry in body["names"]]
    scored = client.post("/loss", json={"model": name, "words": words}).json()["results"]
    for entry, score in zip(body["names"], scored, strict=True):
        assert entry["loss"] == pytest.approx(score["loss"], abs=1e-5)
        assert 1 <= len(entry["name"]) <= 6
        assert entry["truncated"] == (len(entry["name"]) == 6)  # never given the chance to end


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("prefix", ["", "emm"])
def test_temperature_zero_is_the_likeliest_character_at_every_step(client, name, prefix):
    """Greedy over HTTP against /next-char's argmax, step by step (the end token never first)."""
    expected = prefix
    while len(expected) < 32:
        body = client.post("/next-char", json={"model": name, "prefix": expected}).json()
        ranked = [e["char"] for e in body["distribution"] if expected or e["char"] != "."]
        if ranked[0] == ".":
            break
        expected += ranked[0]
    body = client.post("/sample", json={"model": name, "n": 3, "temperature": 0, "prefix": prefix}).json()
    assert [e["name"] for e in body["names"]] == [expected] * 3 and body["complete"]


@pytest.mark.parametrize("name", MODELS)
def test_percentiles_of_every_family_agree_between_sample_and_loss(client, name):
    body = client.post("/sample", json={"model": name, "n": 20, "seed": 8}).json()
    scored = client.post("/loss", json={"model": name, "words": [e["name"] for e in body["names"]]}).json()
    for entry, score in zip(body["names"], scored["results"], strict=True):
        assert 0 <= entry["percentile"] <= 100
        assert entry["percentile"] == pytest.approx(score["percentile"], abs=0.11)  # losses agree to 1e-5


def test_every_model_is_listed_and_an_unknown_one_is_a_422_naming_them(client):
    listed = client.get("/models").json()
    assert [m["name"] for m in listed["models"]] == MODELS and listed["default"] == "names-mlp"
    gru = client.get("/models/names-gru").json()
    assert gru["family"] == "gru" and gru["context"] is None and gru["default"] is False
    assert client.get("/models/names-transformer").json()["context"] == 16
    assert client.get("/models/nope").status_code == 404
    response = client.post("/sample", json={"model": "nope"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "model"]
    assert all(name in response.text for name in MODELS)


def test_seeded_responses_are_byte_identical_alone_or_among_64_concurrent_mixed_requests(server_url):
    """Every family, several settings: each body sent alone, then all of them 64-way concurrent
    with /next-char and /loss traffic mixed in; every /sample response must match byte for byte."""
    bodies = []
    for i, name in enumerate(MODELS):
        bodies += [
            {"model": name, "n": 7, "seed": i, "temperature": 1.2},
            {"model": name, "n": 30, "seed": 100 + i, "top_k": 5, "prefix": "a"},
            {"model": name, "n": 3, "seed": 200 + i, "top_p": 0.8, "novel": True},
            {
                "model": name,
                "n": 12,
                "seed": 300 + i,
                "temperature": 0.4,
                "distinct": True,
                "exclude": ["ann"],
            },
            {"model": name, "n": 5, "seed": 400 + i, "min_distance": 2, "prefix": "ma"},
            {"model": name, "n": 4, "seed": 500 + i, "temperature": 0, "prefix": "k"},
        ]
    alone = [httpx.post(f"{server_url}/sample", json=body).content for body in bodies]

    async def fire() -> list[bytes]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server_url, timeout=60, limits=limits) as c:
            noise = [c.post("/next-char", json={"model": name, "prefix": "ka"}) for name in MODELS]
            noise += [c.post("/loss", json={"model": name, "words": ["ann", "bo"] * 50}) for name in MODELS]
            sampled = [c.post("/sample", json=body) for body in bodies * 3]
            responses = await asyncio.gather(*sampled, *noise)
        assert all(r.status_code == 200 for r in responses)
        return [r.content for r in responses[: len(sampled)]]

    together = asyncio.run(fire())
    for i, content in enumerate(together):
        assert content == alone[i % len(bodies)], bodies[i % len(bodies)]


def test_only_quick_work_may_run_on_the_event_loop(models):
    """Tables answer thousands of names inline, NumPy-stepped models one shared pass of 16 (about
    a millisecond), torch-stepped models nothing (their per-call overhead is milliseconds)."""
    quick = {
        name: (m.is_quick(names=1), m.is_quick(names=16), m.is_quick(names=17), m.is_quick(words=101))
        for name, m in models.items()
    }
    assert quick["names-mlp"] == quick["names-bigram"] == (True, True, True, False)
    assert quick["names-gru"] == (True, True, False, False)
    assert quick["names-transformer"] == quick["names-wavenet"] == (False, False, False, False)
