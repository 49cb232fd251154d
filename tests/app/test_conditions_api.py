"""Conditions over HTTP: /models lists them, /sample, /next-char and /loss take one, /classify
answers by Bayes, every bad condition is a 422 naming what is allowed, seeds hold under concurrency.

The app serves a small conditional GRU (generated words and labels) beside a plain tiny model."""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.api.schemas import ClassifyResponse
from app.main import create_app
from app.settings import Settings

GENDER, PLAIN = "tiny-gender", "tiny-plain"
FEMALE, MALE = {"gender": "female"}, {"gender": "male"}


@pytest.fixture(scope="module")
def api(gender_checkpoint, tiny_checkpoint, tmp_path_factory):
    weights = tmp_path_factory.mktemp("weights")
    shutil.copy(gender_checkpoint[0], weights / f"{GENDER}.safetensors")
    shutil.copy(tiny_checkpoint, weights / f"{PLAIN}.safetensors")
    settings = Settings(weights=weights, default_model=PLAIN, device="cpu")
    with TestClient(create_app(settings)) as client:
        yield client


def post(api, path: str, body: dict):
    return api.post(path, json=body)


def test_models_list_the_conditions_of_a_conditional_model_and_null_for_the_others(api):
    models = {m["name"]: m for m in api.get("/models").json()["models"]}
    assert models[GENDER]["conditions"] == {"gender": ["female", "male"]}
    assert models[PLAIN]["conditions"] is None
    assert api.get(f"/models/{GENDER}").json()["conditions"] == {"gender": ["female", "male"]}


def test_a_condition_moves_sampled_names_toward_its_endings(api):
    ends = {}
    for value, condition in (("female", FEMALE), ("male", MALE)):
        body = {"model": GENDER, "n": 500, "seed": 3, "condition": condition}
        names = [s["name"] for s in post(api, "/sample", body).json()["names"]]
        ends[value] = sum(n.endswith("a") for n in names), sum(n.endswith("o") for n in names)
    (fa, fo), (ma, mo) = ends["female"], ends["male"]
    assert fa > 3 * ma and mo > 3 * fo, ends  # the generated labels: -a female, -o male


@pytest.mark.parametrize("condition", [None, FEMALE, MALE])
def test_next_char_is_a_distribution_and_loss_its_mean_negative_log(api, condition):
    word = "kalo"
    nlls = []
    for i, char in enumerate(word + "."):
        body = {"model": GENDER, "prefix": word[:i], **({"condition": condition} if condition else {})}
        answer = post(api, "/next-char", body).json()["distribution"]
        probs = {d["char"]: d["prob"] for d in answer}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-9)
        nlls.append(-math.log(probs[char]))
    body = {"model": GENDER, "word": word, **({"condition": condition} if condition else {})}
    assert post(api, "/loss", body).json()["loss"] == pytest.approx(sum(nlls) / len(nlls), abs=1e-5)


def test_classify_sums_to_one_and_is_bayes_over_the_per_condition_losses(api):
    words = ["Kala", "bodo", "teme", "sutun", "ra", "mizo"]
    response = post(api, "/classify", {"model": GENDER, "words": words})
    assert response.status_code == 200
    body = response.json()
    ClassifyResponse.model_validate(body)
    prior = body["prior"]["gender"]
    assert prior["female"] + prior["male"] == pytest.approx(1)
    losses = {
        value: post(api, "/loss", {"model": GENDER, "words": words, "condition": {"gender": value}}).json()
        for value in ("female", "male")
    }
    for i, result in enumerate(body["results"]):
        assert result["word"] == words[i].lower()
        p = result["gender"]
        assert p["female"] + p["male"] == pytest.approx(1, abs=1e-12)
        log_joint = {
            value: math.log(prior[value]) - losses[value]["results"][i]["loss"] * (len(words[i]) + 1)
            for value in prior
        }
        expected = 1 / (1 + math.exp(log_joint["male"] - log_joint["female"]))
        assert p["female"] == pytest.approx(expected, abs=1e-6)
    assert body["results"][0]["gender"]["female"] > 0.5 > body["results"][1]["gender"]["female"]


def error(response) -> tuple[list, str]:
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    return detail["loc"], detail["msg"]


@pytest.mark.parametrize("path", ["/sample", "/next-char", "/loss"])
def test_bad_conditions_are_422s_naming_what_is_allowed(api, path):
    base = {"word": "ana"} if path == "/loss" else {}
    loc, msg = error(post(api, path, {**base, "model": GENDER, "condition": {"sex": "female"}}))
    assert loc == ["body", "condition", "sex"] and "allowed: gender" in msg
    loc, msg = error(post(api, path, {**base, "model": GENDER, "condition": {"gender": "other"}}))
    assert loc == ["body", "condition", "gender"] and "allowed: female, male" in msg
    loc, msg = error(post(api, path, {**base, "model": PLAIN, "condition": FEMALE}))
    assert loc == ["body", "condition"] and f"models that take gender: {GENDER}" in msg
    loc, msg = error(post(api, path, {**base, "condition": FEMALE}))  # the default is the plain model
    assert PLAIN in msg and GENDER in msg
    response = post(api, path, {**base, "model": GENDER, "condition": {"gender": 1}})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", "condition"]


def test_classify_refuses_an_unconditional_model_and_bad_words(api):
    loc, msg = error(post(api, "/classify", {"words": ["ana"]}))  # the default: plain
    assert loc == ["body", "model"] and f"models that classify: {GENDER}" in msg
    loc, msg = error(post(api, "/classify", {"model": GENDER, "words": ["ana", "a7"]}))
    assert loc == ["body", "words", 1] and "'7'" in msg
    assert post(api, "/classify", {"model": GENDER, "words": []}).status_code == 422
    assert post(api, "/classify", {"model": GENDER, "words": ["a"] * 1001}).status_code == 422


def test_seeded_conditioned_answers_are_byte_identical_alone_and_concurrently(api):
    bodies = [
        {"model": GENDER, "n": n, "seed": seed, "condition": condition, "novel": novel}
        for condition in (FEMALE, MALE)
        for seed, n, novel in ((1, 5, False), (2, 40, False), (3, 4, True))
    ]
    alone = [post(api, "/sample", body).content for body in bodies]
    noise = [("/classify", {"model": GENDER, "words": ["kala", "bodo"] * 20})]
    noise += [("/next-char", {"model": GENDER, "prefix": "ka", "condition": MALE})]
    jobs = [("/sample", body) for body in bodies] * 4 + noise * 4
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: post(api, *job), jobs))
    assert all(a.status_code == 200 for a in answers)
    together = [a.content for a in answers[: len(bodies) * 4]]
    assert together == alone * 4
    assert alone[0] != alone[3]  # female and male differ for the same seed
