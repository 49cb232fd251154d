"""POST /sample as CSV or NDJSON: the JSON answer's names, streamed chunk by chunk off the loop."""

import csv
import io

import orjson
import pytest
from fastapi.testclient import TestClient

from app.api.export import export_format
from app.main import create_app
from app.serving.workers import ModelRunner
from app.settings import Settings
from tests.conftest import ROOT

MODELS = sorted(p.stem for p in (ROOT / "weights").glob("*.safetensors"))
CSV, NDJSON = {"Accept": "text/csv"}, {"Accept": "application/x-ndjson"}


def csv_names(text: str) -> list[dict]:
    """The CSV's rows as the JSON answer writes names (numbers and booleans parsed back)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    return [
        {"name": r["name"], "loss": float(r["loss"]),
         "percentile": float(r["percentile"]) if r["percentile"] else None,
         "novel": {"true": True, "false": False}[r["novel"]],
         "truncated": {"true": True, "false": False}[r["truncated"]]}
        for r in rows
    ]  # fmt: skip


@pytest.mark.parametrize(
    "accept,kind",
    [
        (None, None),
        ("", None),
        ("application/json", None),
        ("*/*", None),
        ("text/csv", "text/csv"),
        ("application/x-ndjson", "application/x-ndjson"),
        ("text/csv;q=0.5, application/json", None),
        ("application/json;q=0.4, text/csv", "text/csv"),
        ("text/html, text/csv", "text/csv"),
        ("application/x-ndjson, text/csv", "application/x-ndjson"),
        ("text/csv;q=0, application/x-ndjson;q=0.1", "application/x-ndjson"),
        ("TEXT/CSV; charset=utf-8", "text/csv"),
        ("text/html", None),
    ],
)
def test_the_accept_header_picks_the_answer_format(accept, kind):
    assert export_format(accept) == kind


@pytest.mark.parametrize("name", MODELS)
def test_csv_and_ndjson_rows_are_the_json_answers_names(client, name):
    body = {"model": name, "n": 120, "seed": 5, "temperature": 0.9, "max_length": 9}
    names = client.post("/sample", json=body).json()["names"]
    as_csv = client.post("/sample", json=body, headers=CSV)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.startswith("name,loss,percentile,novel,truncated\r\n")
    assert csv_names(as_csv.text) == names
    as_ndjson = client.post("/sample", json=body, headers=NDJSON)
    assert as_ndjson.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(line) for line in as_ndjson.content.splitlines()] == names


@pytest.mark.parametrize(
    "extra",
    [{"novel": True}, {"distinct": True, "temperature": 0.4}, {"exclude": ["ann"], "min_distance": 2}],
)
def test_resampled_exports_match_the_json_answer_too(client, extra):
    body = {"n": 200, "seed": 8, **extra}
    names = client.post("/sample", json=body).json()["names"]
    assert csv_names(client.post("/sample", json=body, headers=CSV).text) == names
    lines = client.post("/sample", json=body, headers=NDJSON).content.splitlines()
    assert [orjson.loads(line) for line in lines] == names


@pytest.mark.parametrize("name", ["names-mlp", "names-gru"])  # a table and a forward pass
def test_a_large_export_starts_with_the_json_answer_and_repeats(client, name):
    body = {"model": name, "n": 2500, "seed": 3}
    first = client.post("/sample", json={**body, "n": 1000}).json()["names"]
    exported = csv_names(client.post("/sample", json=body, headers=CSV).text)
    assert len(exported) == 2500 and exported[:1000] == first
    again = client.post("/sample", json=body, headers=CSV)
    assert csv_names(again.text) == exported


def test_an_incomplete_export_says_why_at_the_end_of_ndjson(client):
    body = {"n": 3, "prefix": "anna", "max_length": 4, "novel": True}
    lines = client.post("/sample", json=body, headers=NDJSON).content.splitlines()
    assert len(lines) == 1
    last = orjson.loads(lines[-1])
    assert last["complete"] is False and "found 0 distinct novel names of 3" in last["reason"]
    assert client.post("/sample", json=body, headers=CSV).text == "name,loss,percentile,novel,truncated\r\n"


def test_export_limits_and_bad_input_are_422s_before_any_row(client):
    response = client.post("/sample", json={"n": 100_001}, headers=CSV)
    assert response.status_code == 422 and "less than or equal to 100000" in response.text
    response = client.post("/sample", json={"n": 1001})
    assert response.status_code == 422 and "at most 1000 in a JSON answer" in response.text
    response = client.post("/sample", json={"n": 50, "prefix": "k7"}, headers=NDJSON)
    assert response.status_code == 422 and response.headers["content-type"] == "application/json"
    assert response.json()["detail"][0]["loc"] == ["body", "prefix"]
    settings = Settings(default_model="names-mlp", device="cpu", max_export_n=50)
    with TestClient(create_app(settings)) as limited:
        (error,) = limited.post("/sample", json={"n": 51}, headers=CSV).json()["detail"]
        assert (
            error["loc"] == ["body", "n"]
            and "n is 51; this server allows at most 50 as text/csv" in error["msg"]
        )
        assert len(csv_names(limited.post("/sample", json={"n": 50}, headers=CSV).text)) == 50


def test_every_chunk_is_drawn_off_the_event_loop(client, monkeypatch):
    """2,500 names are three chunks, each drawn and written on a worker thread; only the first
    may be refused by a full queue (the rest belong to an answer already started)."""
    calls = []
    original = ModelRunner.off_loop

    async def spy(self, work, admitted=False):
        calls.append(admitted)
        return await original(self, work, admitted)

    monkeypatch.setattr(ModelRunner, "off_loop", spy)
    response = client.post("/sample", json={"n": 2500, "seed": 1}, headers=CSV)
    assert len(csv_names(response.text)) == 2500
    assert calls == [False, True, True, True]  # three chunks, then the end


@pytest.mark.parametrize("name", ["names-mlp", "names-gru"])  # exact, and SMC or rejection
def test_a_constrained_export_is_the_constrained_json_answer(client, name):
    body = {"model": name, "n": 40, "seed": 6, "constraints": {"ends_with": "lyn", "length": [5, 9]}}
    names = client.post("/sample", json=body).json()["names"]
    assert len(names) == 40 and all(n["name"].endswith("lyn") for n in names)
    assert csv_names(client.post("/sample", json=body, headers=CSV).text) == names
    lines = client.post("/sample", json=body, headers=NDJSON).content.splitlines()
    assert [orjson.loads(line) for line in lines] == names
