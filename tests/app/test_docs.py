"""/docs works offline (Swagger UI from the app), and the OpenAPI document says what comes back."""

from __future__ import annotations

import re

import pytest

from app.api.examples import (
    BATCH_LOSS_EXAMPLE,
    CLASSIFY_EXAMPLE,
    CLASSIFY_REQUEST_EXAMPLE,
    NEXT_CHAR_EXAMPLE,
    SAMPLE_EXAMPLE,
    WORD_LOSS_EXAMPLE,
)
from app.api.schemas import BatchLoss, ClassifyResponse, ModelInfo, NextCharResponse, SampleResponse, WordLoss


def test_docs_page_and_every_asset_it_loads_come_from_the_app(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "https://" not in html and "http://" not in html  # no CDN
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert any(a.endswith("swagger-ui.css") for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN: not served


def test_every_error_status_is_documented_on_every_route(client):
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            expected = {"200", "400", "503"} | ({"413", "415", "422"} if method == "post" else set())
            assert expected <= statuses, (method, path, statuses)
            for status, response in operation["responses"].items():
                if status != "200":
                    content = response["content"]
                    assert any("example" in c or "schema" in c for c in content.values()), (path, status)


def test_response_examples_are_real_values_not_placeholders(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in (
        "SampleResponse",
        "NextCharResponse",
        "WordLoss",
        "BatchLoss",
        "ClassifyResponse",
        "ModelInfo",
        "ModelList",
        "Health",
    ):
        (example,) = schemas[name]["examples"]
        assert "string" not in str(example)
    SampleResponse.model_validate(SAMPLE_EXAMPLE)
    NextCharResponse.model_validate(NEXT_CHAR_EXAMPLE)
    WordLoss.model_validate(WORD_LOSS_EXAMPLE)
    BatchLoss.model_validate(BATCH_LOSS_EXAMPLE)
    ClassifyResponse.model_validate(CLASSIFY_EXAMPLE)
    ModelInfo.model_validate(schemas["ModelInfo"]["examples"][0])
    loss = spec["paths"]["/loss"]["post"]
    # and, with a conditional model loaded, one request per endpoint with its condition
    assert set(loss["requestBody"]["content"]["application/json"]["examples"]) == {
        "one word",
        "a batch",
        "gender female",
    }
    for path in ("/sample", "/next-char"):
        examples = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert examples["gender female"]["value"]["condition"] == {"gender": "female"}
        assert "condition" not in examples["no condition"]["value"]
    assert set(loss["responses"]["200"]["content"]["application/json"]["examples"]) == {"one word", "a batch"}


@pytest.mark.parametrize(
    "path,body,example",
    [
        ("/next-char", {"prefix": "emm", "model": "names-mlp"}, NEXT_CHAR_EXAMPLE),
        ("/loss", {"word": "emma", "model": "names-mlp"}, WORD_LOSS_EXAMPLE),
        ("/loss", {"words": ["emma", "xqzv"], "model": "names-mlp"}, BATCH_LOSS_EXAMPLE),
        ("/sample", {"n": 3, "seed": 42, "novel": True, "model": "names-mlp"}, SAMPLE_EXAMPLE),
        ("/classify", CLASSIFY_REQUEST_EXAMPLE, CLASSIFY_EXAMPLE),
    ],
)
def test_examples_are_what_the_committed_model_answers(client, path, body, example):
    """The documented examples are the reference MLP's real answers (to 1e-6)."""
    _assert_close(client.post(path, json=body).json(), example)


def _assert_close(got, want, where="body"):
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), where
    elif isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, where
