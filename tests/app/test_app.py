"""The HTTP contract, in process: happy paths, agreement between endpoints, every bad input."""

import asyncio
import gc
import math

import httpx
import pytest

from app.api.schemas import BatchLoss, ModelList, NextCharResponse, SampleResponse, ServedModelInfo, WordLoss
from app.main import create_app
from model.checkpoint import load_checkpoint
from model.data import read_words
from tests.conftest import DEFAULT_CHECKPOINT, REFERENCE_WORDS


def test_responses_match_their_documented_models(client):
    """Routes skip FastAPI's response re-validation for speed; the documented schemas must hold."""
    SampleResponse.model_validate(client.post("/sample", json={"n": 3, "novel": True}).json())
    NextCharResponse.model_validate(client.post("/next-char", json={"prefix": "a"}).json())
    WordLoss.model_validate(client.post("/loss", json={"word": "ann"}).json())
    BatchLoss.model_validate(client.post("/loss", json={"words": ["ann", "bo"]}).json())
    ServedModelInfo.model_validate(client.get("/model").json())
    ModelList.model_validate(client.get("/models").json())


def test_health_and_model(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert info["name"] == "names-mlp"
    assert info["metrics"] == ckpt.metrics
    assert info["data"] == {**ckpt.data, "source": "names.txt"}  # a file name, never a local path
    assert info["config"] == {
        "vocab_size": 27,
        "block_size": 3,
        "n_embd": 10,
        "n_hidden": 300,
        "init": "scaled",
    }
    assert info["family"] == "mlp" and info["context"] == 3 and info["default"] is True
    assert info["parameters"] == 27 * 10 + 30 * 300 + 300 + 300 * 27 + 27
    assert info["alphabet"] == ckpt.vocab.alphabet
    assert info["device"] == "cpu"


def test_start_up_freezes_the_loaded_model_out_of_the_collectors_sight(client):
    """The model's objects (and the app's) sit in the permanent generation: full collections
    under load stay cheap."""
    model = client.app.state.service.default
    assert gc.is_tracked(model) and gc.get_freeze_count() > 0
    assert not any(obj is model for obj in gc.get_objects())  # the collected generations


def test_health_is_503_until_the_model_is_loaded():
    async def get_health() -> httpx.Response:
        app = create_app()  # ASGITransport does not run the lifespan: nothing is loaded
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.get("/health")

    response = asyncio.run(get_health())
    assert response.status_code == 503
    assert "not loaded" in response.json()["detail"]


def test_sample_happy_path(client):
    body = client.post("/sample", json={"n": 20, "prefix": " Ma", "max_length": 8, "seed": 5}).json()
    assert body["model"] == "names-mlp" and body["complete"] is True
    assert len(body["names"]) == 20
    for entry in body["names"]:
        assert entry["name"].startswith("ma") and 2 <= len(entry["name"]) <= 8
        assert set(entry["name"]) <= set("abcdefghijklmnopqrstuvwxyz")
    first = body["names"][0]
    scored = client.post("/loss", json={"word": first["name"]}).json()
    assert first["loss"] == pytest.approx(scored["loss"], abs=1e-9)


def test_seeded_sample_repeats(client):
    request = {"n": 10, "seed": 123, "temperature": 0.8}
    assert client.post("/sample", json=request).json() == client.post("/sample", json=request).json()
    other = client.post("/sample", json={**request, "seed": 124}).json()
    assert other["names"] != client.post("/sample", json=request).json()["names"]


def test_novel_names_are_not_known_words(client):
    body = client.post("/sample", json={"n": 30, "seed": 9, "novel": True}).json()
    assert body["complete"] is True and len(body["names"]) == 30
    assert all(entry["novel"] for entry in body["names"])
    plain = client.post("/sample", json={"n": 200, "seed": 9, "temperature": 0.5}).json()
    assert any(not entry["novel"] for entry in plain["names"])  # the model does reproduce real names


def test_novel_gives_up_after_bounded_rounds_and_says_so(client):
    # the only name of at most 4 characters starting with "anna" is "anna", a real name
    body = client.post("/sample", json={"n": 3, "prefix": "anna", "max_length": 4, "novel": True}).json()
    assert body["names"] == [] and body["complete"] is False
    assert "found 0 distinct novel names of 3 in 10 rounds" in body["reason"]


def one_edit_test(words: list[str]):
    """A test: is a name at most one edit from some word? (equal; the name is a word less one
    letter; the word is the name less one letter; one letter differs at the same position)."""
    plain = set(words)
    shortened = {w[:i] + w[i + 1 :] for w in words for i in range(len(w))}
    blanked = {w[:i] + "?" + w[i + 1 :] for w in words for i in range(len(w))}

    def near(name: str) -> bool:
        cuts = range(len(name))
        return (
            name in plain
            or name in shortened
            or any(name[:i] + name[i + 1 :] in plain for i in cuts)
            or any(name[:i] + "?" + name[i + 1 :] in blanked for i in cuts)
        )

    return near


def test_distinct_emm_names_at_a_low_temperature(client):
    """The issue's case: 30 names after "emm" at 0.3 repeat; distinct gives 30 different ones,
    real names allowed."""
    request = {"n": 30, "prefix": "emm", "temperature": 0.3, "seed": 1}
    plain = [e["name"] for e in client.post("/sample", json=request).json()["names"]]
    assert len(set(plain)) < 30
    body = client.post("/sample", json={**request, "distinct": True}).json()
    names = [e["name"] for e in body["names"]]
    assert body["complete"] is True and len(names) == 30 == len(set(names))
    assert all(name.startswith("emm") for name in names)
    assert any(not e["novel"] for e in body["names"])


def test_exclude_and_min_distance_over_http(client):
    first = [e["name"] for e in client.post("/sample", json={"n": 5, "seed": 2}).json()["names"]]
    body = client.post("/sample", json={"n": 40, "seed": 2, "exclude": [n.upper() for n in first]}).json()
    assert body["complete"] and not set(first) & {e["name"] for e in body["names"]}
    far = client.post("/sample", json={"n": 20, "seed": 3, "min_distance": 2, "exclude": ["kayla"]}).json()
    assert far["complete"] and len(far["names"]) == 20 and all(e["novel"] for e in far["names"])
    if REFERENCE_WORDS.is_file():  # at least two edits from every real name, by another method
        near = one_edit_test([*read_words(REFERENCE_WORDS), "kayla"])
        assert not any(near(e["name"]) for e in far["names"])
        plain = client.post("/sample", json={"n": 20, "seed": 3}).json()["names"]
        assert any(near(e["name"]) for e in plain)  # the test can tell
    greedy = client.post("/sample", json={"n": 2, "temperature": 0, "distinct": True}).json()
    assert len(greedy["names"]) == 1 and greedy["complete"] is False
    assert "temperature 0 (greedy) draws one name only" in greedy["reason"]


def test_loss_percentile_is_the_share_of_held_out_names_less_likely(client):
    reference = load_checkpoint(DEFAULT_CHECKPOINT).reference["losses"]
    body = client.post("/loss", json={"words": ["emma", "xqzv", "kayla"]}).json()
    for result in body["results"]:
        higher = sum(r > result["loss"] for r in reference) + sum(r == result["loss"] for r in reference) / 2
        assert result["percentile"] == pytest.approx(round(100 * higher / len(reference), 1), abs=1e-9)
    emma, xqzv, _ = body["results"]
    assert emma["percentile"] > 50 > xqzv["percentile"]
    assert client.post("/loss", json={"word": "emma"}).json()["percentile"] == emma["percentile"]


def test_next_char_distribution(client):
    body = client.post("/next-char", json={"prefix": "EMM "}).json()
    assert body["prefix"] == "emm"
    probs = [entry["prob"] for entry in body["distribution"]]
    assert sorted(entry["char"] for entry in body["distribution"]) == sorted(".abcdefghijklmnopqrstuvwxyz")
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-6)
    empty = client.post("/next-char", json={}).json()
    assert empty["prefix"] == ""


def test_loss_agrees_with_next_char_along_the_word(client):
    word = "olivia"
    expected = []
    for i, char in enumerate(word + "."):
        dist = client.post("/next-char", json={"prefix": word[:i]}).json()["distribution"]
        expected.append(-math.log(next(e["prob"] for e in dist if e["char"] == char)))
    body = client.post("/loss", json={"word": word}).json()
    assert [c["char"] for c in body["chars"]] == list("olivia.")
    assert [c["nll"] for c in body["chars"]] == pytest.approx(expected, abs=1e-5)
    assert body["loss"] == pytest.approx(sum(expected) / len(expected), abs=1e-6)
    assert body["perplexity"] == pytest.approx(math.exp(body["loss"]))


def test_batch_loss_mean_is_over_all_predictions(client):
    words = ["emma", "xavier", "bo"]
    body = client.post("/loss", json={"words": words}).json()
    assert [r["word"] for r in body["results"]] == words
    nlls = [c["nll"] for r in body["results"] for c in r["chars"]]
    assert body["predictions"] == len(nlls) == 5 + 7 + 3
    assert body["mean_loss"] == pytest.approx(sum(nlls) / len(nlls))
    single = client.post("/loss", json={"word": "emma"}).json()
    assert body["results"][0]["loss"] == pytest.approx(single["loss"], abs=1e-12)
    assert body["results"][0]["chars"] == [pytest.approx(c, abs=1e-12) for c in single["chars"]]


def _json(content: bytes) -> dict:
    return {"content": content, "headers": {"content-type": "application/json"}}


BAD_REQUESTS = [
    ("/sample", {"json": {"prefix": "a1b!"}}, 422, "'1', '!'"),
    ("/next-char", {"json": {"prefix": "zo\u00eb"}}, 422, "'\u00eb'"),
    ("/loss", {"json": {"word": "ann-marie"}}, 422, "'-'"),
    ("/loss", {"json": {"words": ["emma", "b0b"]}}, 422, "'0'"),
    ("/loss", {"json": {"word": ""}}, 422, "at least 1 character"),
    ("/loss", {"json": {"word": "   "}}, 422, "cannot score an empty word"),
    # issue 12, class 1: each of these was a 500 (or a 200 with empty names)
    ("/sample", _json(b'{"prefix": "\\ud800"}'), 422, "valid string"),
    ("/loss", _json(b'{"word": "\\udfff"}'), 422, "valid string"),
    ("/loss", {"json": {"word": None}}, 422, "valid string"),
    ("/loss", {"json": {"words": None}}, 422, "valid list"),
    ("/loss", {"json": {"word": "\u001c\u001d"}}, 422, "outside the alphabet"),
    ("/loss", {"json": {"words": ["ann", "\u001f"]}}, 422, "outside the alphabet"),
    ("/next-char", {"json": {"prefix": "\u0085a"}}, 422, "outside the alphabet"),
    ("/loss", {"json": {"word": "\u212a"}}, 422, "outside the alphabet"),  # Kelvin sign: lower() is 'k'
    ("/sample", {"json": {"seed": 10**30}}, 422, "less than or equal to"),
    ("/sample", {"json": {"top_k": 10**30}}, 422, "less than or equal to 27"),
    ("/sample", _json(b'{"n": 1e400}'), 422, "valid integer"),
    ("/sample", _json(b"[" * 5000 + b"]" * 5000), 400, "error parsing the body"),
    ("/loss", {"json": {f"k{i}": i for i in range(20_000)}}, 413, "Content Too Large"),
    ("/loss", {"json": {"words": [[i] for i in range(1000)]}}, 422, "950 more errors not shown"),
    ("/loss", {"json": {"words": []}}, 422, "at least 1 item"),
    ("/loss", {"json": {"words": ["a"] * 1001}}, 422, "at most 1000 items"),
    ("/loss", {"json": {}}, 422, "exactly one of 'word'"),
    ("/loss", {"json": {"word": "emma", "words": ["emma"]}}, 422, "exactly one of 'word'"),
    ("/loss", {"json": {"word": "a" * 65}}, 422, "at most 64 characters"),
    ("/next-char", {"json": {"prefix": "a" * 65}}, 422, "at most 64 characters"),
    ("/sample", {"json": {"prefix": "abcdef", "max_length": 5}}, 422, "more than max_length"),
    ("/sample", {"json": {"n": 0}}, 422, "greater than or equal to 1"),
    ("/sample", {"json": {"n": 1001}}, 422, "at most 1000 in a JSON answer (Accept: text/csv"),
    ("/sample", {"json": {"n": 100_001}}, 422, "less than or equal to 100000"),
    ("/sample", {"json": {"max_length": 0}}, 422, "greater than or equal to 1"),
    ("/sample", {"json": {"max_length": 65}}, 422, "less than or equal to 64"),
    ("/sample", {"json": {"temperature": -1.5}}, 422, "greater than or equal to 0"),
    ("/sample", {"json": {"min_distance": 3}}, 422, "less than or equal to 2"),
    ("/sample", {"json": {"min_distance": -1}}, 422, "greater than or equal to 0"),
    ("/sample", {"json": {"distinct": "yes"}}, 422, "valid boolean"),
    ("/sample", {"json": {"exclude": "emma"}}, 422, "valid list"),
    ("/sample", {"json": {"exclude": [""]}}, 422, "at least 1 character"),
    ("/sample", {"json": {"exclude": ["emma", "b4d"]}}, 422, "outside the alphabet: '4'"),
    ("/sample", {"json": {"exclude": ["emma", "a" * 65]}}, 422, "at most 64 characters"),
    ("/sample", {"json": {"temperature": 5.5}}, 422, "less than or equal to 5"),
    ("/sample", _json(b'{"temperature": NaN}'), 422, "finite number"),
    ("/sample", _json(b'{"temperature": Infinity}'), 422, "finite number"),
    ("/sample", _json(b'{"temperature": -Infinity}'), 422, "finite number"),
    ("/sample", {"json": {"temperature": "hot"}}, 422, "valid number"),
    ("/sample", {"json": {"n": "5"}}, 422, "valid integer"),
    ("/sample", {"json": {"n": 2.5}}, 422, "valid integer"),
    ("/sample", {"json": {"n": True}}, 422, "valid integer"),
    ("/sample", {"json": {"novel": "yes"}}, 422, "valid boolean"),
    ("/sample", {"json": {"top_k": 0}}, 422, "greater than or equal to 1"),
    ("/sample", {"json": {"top_k": 28}}, 422, "less than or equal to 27"),
    ("/sample", {"json": {"seed": -1}}, 422, "greater than or equal to 0"),
    ("/sample", {"json": {"n": 2, "colour": "red"}}, 422, "'colour' is not a field"),
    ("/sample", {"json": [1, 2]}, 422, "valid dictionary"),
    ("/sample", _json(b'{"n": 3'), 422, "JSON decode error"),
    ("/loss", _json(b"not json"), 422, "JSON decode error"),
    ("/sample", {"content": b'{"n": 3}', "headers": {"content-type": "text/plain"}}, 415, "application/json"),
    ("/loss", {"data": {"word": "emma"}}, 415, "application/x-www-form-urlencoded"),
    ("/sample", _json(b'{"prefix": "' + b"a" * 300_000 + b'"}'), 413, "Content Too Large"),
]


@pytest.mark.parametrize("path,kwargs,status,message", BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(client, path, kwargs, status, message):
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.text
    assert client.post("/sample", json={"n": 1, "seed": 0}).status_code == 200


def test_openapi_has_an_example_for_every_request(client):
    spec = client.get("/openapi.json").json()
    for name in ("SampleRequest", "NextCharRequest", "LossRequest"):
        examples = spec["components"]["schemas"][name]["examples"]
        assert examples
        path = {"SampleRequest": "/sample", "NextCharRequest": "/next-char", "LossRequest": "/loss"}[name]
        for example in examples:  # try-it-out works with the examples as given
            assert client.post(path, json=example).status_code == 200
    assert client.get("/docs").status_code == 200


def test_tiny_temperatures_and_top_p_still_give_real_names(client):
    """1e-320 divides the logits into -inf except the likeliest: greedy names, never empty ones."""
    for body in ({"temperature": 1e-320}, {"top_p": 5e-324}, {"temperature": 5e-324, "top_p": 5e-324}):
        for model in ("names-mlp", "names-gru", "names-transformer"):
            got = client.post("/sample", json={**body, "n": 3, "seed": 1, "model": model})
            assert got.status_code == 200, got.text
            assert all(len(entry["name"]) >= 2 for entry in got.json()["names"]), got.text


def test_integral_floats_are_integers_as_json_schema_says(client):
    assert (
        client.post("/sample", json={"n": 3.0, "seed": 1}).json()
        == client.post("/sample", json={"n": 3, "seed": 1}).json()
    )


def test_post_to_a_get_route_is_405_head_works_and_no_host_reflecting_redirect(client):
    assert client.post("/health", content=b"x", headers={"content-type": "text/plain"}).status_code == 405
    assert client.post("/model", json={}).status_code == 405
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert client.head("/models").status_code == 200
    slash = client.get("/health/", headers={"host": "evil.example"}, follow_redirects=False)
    assert slash.status_code == 404 and "location" not in slash.headers


def test_a_full_work_queue_is_503_with_retry_after(client, monkeypatch):
    runner = client.app.state.service.runner
    monkeypatch.setattr(runner, "queued", runner.max_queue)
    response = client.post("/sample", json={"n": 5, "model": "names-transformer"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]


def test_openapi_states_the_constraints(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    loss = schemas["LossRequest"]
    assert loss["oneOf"] == [{"required": ["word"]}, {"required": ["words"]}]
    assert loss["properties"]["word"]["pattern"] == r"^[ \t\n\r]*[A-Za-z]+[ \t\n\r]*$"
    assert schemas["SampleRequest"]["properties"]["top_k"]["anyOf"][0]["maximum"] == 27
    assert "names-mlp" in schemas["SampleRequest"]["properties"]["model"]["anyOf"][0]["enum"]
    # every body's text and model fields, wherever they are, carry the loaded models' rules
    text_fields = {
        "prefix": r"^[ \t\n\r]*[A-Za-z]*[ \t\n\r]*$",
        "word": loss["properties"]["word"]["pattern"],
    }
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if name.endswith("Request") and field in text_fields:
                assert prop["pattern"] == text_fields[field], (name, field)
            if name.endswith("Request") and field == "model":
                assert prop["anyOf"][0]["enum"] == sorted(prop["anyOf"][0]["enum"]) != [], name
    assert loss["properties"]["words"]["items"]["pattern"] == text_fields["word"]
    assert "x-namegen" not in str(schemas)  # the marks are replaced, never shown


def test_settings_limits_are_422s_like_the_models_own():
    """NAMEGEN_MAX_N and friends lower the contract's limits; past them the answer is the same 422
    format, at the field, as a check of the model's."""
    from fastapi.testclient import TestClient

    from app.settings import Settings

    settings = Settings(default_model="names-mlp", device="cpu", max_n=5, max_words=2, max_length=6)
    with TestClient(create_app(settings)) as limited:
        cases = [
            ("/sample", {"n": 6, "max_length": 6}, ["body", "n"], "n is 6; this server allows at most 5"),
            ("/sample", {"n": 5, "max_length": 7}, ["body", "max_length"], "max_length is 7"),
            ("/next-char", {"prefix": "abcdefg"}, ["body", "prefix"], "the prefix length is 7"),
            ("/loss", {"words": ["a", "b", "c"]}, ["body", "words"], "the number of words is 3"),
            ("/loss", {"words": ["ab", "abcdefg"]}, ["body", "words", 1], "the word length is 7"),
            ("/loss", {"word": "abcdefg"}, ["body", "word"], "the word length is 7"),
        ]
        for path, body, loc, message in cases:
            response = limited.post(path, json=body)
            assert response.status_code == 422, (path, body)
            (error,) = response.json()["detail"]
            assert error["loc"] == loc and message in error["msg"], error
        assert limited.post("/sample", json={"n": 5, "max_length": 6, "seed": 1}).status_code == 200


def test_a_bad_word_is_named_by_its_field_and_index(client):
    response = client.post("/loss", json={"words": ["emma", "ka7", "  ", "zoe"]})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [["body", "words", 1], ["body", "words", 2]]
    assert "'7'" in errors[0]["msg"] and "empty" in errors[1]["msg"]
    (error,) = client.post("/loss", json={"word": "Kélvin"}).json()["detail"]
    assert error["loc"] == ["body", "word"] and "'é'" in error["msg"]


@pytest.mark.parametrize(
    "path,body,hint",
    [
        ("/sample", {"nn": 3}, "'nn' is not a field; did you mean 'n'?"),
        ("/sample", {"count": 3}, "'count' is not a field; see 'n'"),
        ("/sample", {"temp": 0.5}, "see 'temperature'"),
        ("/sample", {"starts_with": "ka"}, "see 'prefix'"),
        ("/next-char", {"prefx": "a"}, "did you mean 'prefix'?"),
        ("/loss", {"word": "emma", "modle": "names-mlp"}, "did you mean 'model'?"),
        ("/loss", {"wrd": "emma"}, "'wrd' is not a field; did you mean 'word'?"),
        ("/sample", {"zzz": 1}, "'zzz' is not a field; the fields are: model, n, temperature"),
    ],
)
def test_an_unknown_field_gets_a_hint(client, path, body, hint):
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert any(hint in error["msg"] for error in response.json()["detail"]), response.json()
