"""Constraints over HTTP: the contract of /sample and /next-char, every refusal a 422 at
["body", "constraints", ...] saying why, and seeded bytes identical under 64-way concurrency."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from app.api.examples import CONSTRAINED_SAMPLE_EXAMPLE
from app.api.schemas import NextCharResponse, SampleResponse


def test_constrained_sample_says_how_it_was_drawn(client):
    body = {"n": 3, "seed": 42, "model": "names-mlp", "constraints": {"ends_with": "lyn", "length": [5, 8]}}
    response = client.post("/sample", json=body)
    assert response.status_code == 200
    answer = response.json()
    SampleResponse.model_validate(answer)
    assert answer["constraint"]["method"] == "exact" and 0 < answer["constraint"]["p_constraint"] < 0.05
    assert all(n["name"].endswith("lyn") and 5 <= len(n["name"]) <= 8 for n in answer["names"])
    # the documented example is this very answer (to 1e-9)
    assert answer["names"] == CONSTRAINED_SAMPLE_EXAMPLE["names"]
    documented = CONSTRAINED_SAMPLE_EXAMPLE["constraint"]
    assert answer["constraint"]["method"] == documented["method"] and answer["constraint"]["draws"] == 3
    assert answer["constraint"]["p_constraint"] == pytest.approx(documented["p_constraint"], rel=1e-9)
    # an unconstrained answer has no constraint object (its bytes are as before)
    assert "constraint" not in client.post("/sample", json={"n": 2, "seed": 1}).json()


@pytest.mark.parametrize("model", ["names-gru", "names-transformer", "names-wavenet", "names-bigram"])
def test_every_family_answers_constraints(client, model):
    constraints = {"contains": ["ar"], "excludes": ["y"], "regex": "[a-m].*", "length": [4, 9]}
    answer = client.post(
        "/sample", json={"n": 8, "seed": 3, "model": model, "constraints": constraints}
    ).json()
    assert answer["complete"] and len(answer["names"]) == 8
    assert answer["constraint"]["method"] in {"exact", "rejection", "smc"}
    assert answer["constraint"]["draws"] >= 8
    for entry in answer["names"]:
        name = entry["name"]
        assert "ar" in name and "y" not in name and re.fullmatch("[a-m].*", name) and 4 <= len(name) <= 9


def test_rare_constraint_on_the_gru_runs_smc_and_reports_ess(client):
    answer = client.post(
        "/sample",
        json={"n": 40, "seed": 5, "model": "names-gru", "constraints": {"ends_with": "x", "contains": ["z"]}},
    ).json()
    assert answer["constraint"]["method"] == "smc" and answer["constraint"]["ess"] > 1
    assert answer["constraint"]["p_constraint"] < 0.001
    assert all(n["name"].endswith("x") and "z" in n["name"] for n in answer["names"])


def test_complete_false_with_a_reason(client):
    known = "emma|anna|olivia"
    answer = client.post(
        "/sample", json={"n": 3, "seed": 1, "novel": True, "constraints": {"regex": known}}
    ).json()
    assert answer["complete"] is False and answer["names"] == []
    assert "novel" in answer["reason"] and "budget" in answer["reason"]


@pytest.mark.parametrize(
    ("body", "loc", "says"),
    [
        (
            {"constraints": {"length": [5, 3]}},
            ["body", "constraints", "length"],
            "the minimum is above the maximum",
        ),
        (
            {"constraints": {"ends_with": "x", "regex": "[ab]+"}},
            ["body", "constraints"],
            "ends_with 'x' with regex",
        ),
        (
            {"prefix": "ab", "constraints": {"regex": "c.*"}},
            ["body", "constraints"],
            "prefix 'ab' with regex 'c.*'",
        ),
        (
            {"constraints": {"contains": ["a" * 40]}},
            ["body", "constraints", "contains", 0],
            "no name of at most 32",
        ),
        (
            {"max_length": 5, "constraints": {"contains": ["abcdef"]}},
            ["body", "constraints", "contains", 0],
            "at most 5",
        ),
        ({"constraints": {"length": [2, 40]}}, ["body", "constraints", "length"], "above max_length (32)"),
        ({"constraints": {"colour": "red"}}, ["body", "constraints", "colour"], "Extra inputs"),
        (
            {"constraints": {"regex": "(a)\\1"}},
            ["body", "constraints", "regex"],
            "backreferences are not supported",
        ),
        (
            {"constraints": {"regex": "a(?=b)"}},
            ["body", "constraints", "regex"],
            "look-arounds are not supported",
        ),
        ({"constraints": {"regex": "(ab"}}, ["body", "constraints", "regex"], "missing ')'"),
        ({"constraints": {"ends_with": "é"}}, ["body", "constraints", "ends_with"], "outside the alphabet"),
        ({"constraints": {"length": [3]}}, ["body", "constraints", "length"], "at least 2 items"),
        ({"constraints": {"contains": "ar"}}, ["body", "constraints", "contains"], "valid list"),
        ({"constraints": {"excludes": [""]}}, ["body", "constraints", "excludes", 0], "at least 1 character"),
        ({"constraints": "ends with n"}, ["body", "constraints"], "valid dictionary"),
    ],
)
def test_bad_constraints_are_422s_naming_the_field(client, body, loc, says):
    for path in ("/sample", "/next-char"):
        response = client.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        detail = response.json()["detail"]
        assert any(d["loc"] == loc and says in d["msg"] for d in detail), (path, detail)


def test_next_char_with_constraints_is_the_conditional(client):
    body = {"model": "names-mlp", "prefix": "ja", "constraints": {"ends_with": "n", "length": [4, 5]}}
    answer = client.post("/next-char", json=body).json()
    NextCharResponse.model_validate(answer)
    assert answer["constraint"]["method"] == "exact"
    probs = {d["char"]: d["prob"] for d in answer["distribution"]}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["."] == 0.0  # "ja" is too short to end
    plain = {
        d["char"]: d["prob"]
        for d in client.post("/next-char", json={"model": "names-mlp", "prefix": "ja"}).json()["distribution"]
    }
    assert probs != pytest.approx(plain, abs=0.01)
    gru = client.post("/next-char", json={**body, "model": "names-gru", "seed": 3}).json()
    assert gru["constraint"]["method"] == "smc" and gru["constraint"]["ess"] > 100
    assert gru == client.post("/next-char", json={**body, "model": "names-gru", "seed": 3}).json()


def test_seeded_constrained_bytes_are_identical_alone_and_among_64_concurrent_requests(server_url):
    son, short = {"ends_with": "son"}, {"length": [5, 7]}
    bodies = [
        {"model": "names-mlp", "n": 50, "seed": 1, "constraints": son},
        {"model": "names-mlp", "n": 5, "seed": 2, "temperature": 0.8, "constraints": short, "novel": True},
        {"model": "names-bigram", "n": 20, "seed": 3, "top_k": 10, "constraints": {"contains": ["ar"]}},
        {"model": "names-gru", "n": 30, "seed": 4, "constraints": short},
        {"model": "names-gru", "n": 40, "seed": 5, "constraints": son},
        {
            "model": "names-gru",
            "n": 6,
            "seed": 6,
            "prefix": "ma",
            "constraints": {"regex": "ma.*(a|e)"},
            "novel": True,
        },
        {"model": "names-wavenet", "n": 5, "seed": 7, "constraints": short},
        {
            "model": "names-transformer",
            "n": 4,
            "seed": 8,
            "constraints": {"ends_with": "a", "length": [4, 6]},
        },
    ]
    alone = [httpx.post(f"{server_url}/sample", json=body, timeout=120).content for body in bodies]

    async def fire() -> list[bytes]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server_url, timeout=120, limits=limits) as c:
            noise = [
                c.post("/next-char", json={"model": m, "prefix": "ka", "constraints": son, "seed": 1})
                for m in ("names-mlp", "names-gru")
            ]
            noise += [c.post("/sample", json={"model": "names-mlp", "n": 100, "seed": i}) for i in range(14)]
            sampled = [c.post("/sample", json=body) for body in bodies * 6]
            responses = await asyncio.gather(*sampled, *noise)
        assert all(r.status_code == 200 for r in responses), [
            r.text for r in responses if r.status_code != 200
        ]
        return [r.content for r in responses[: len(sampled)]]

    together = asyncio.run(fire())
    assert len(together) + 16 == 64
    for i, content in enumerate(together):
        assert content == alone[i % len(bodies)], bodies[i % len(bodies)]
