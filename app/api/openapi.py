"""An OpenAPI document that says what comes back: `openapi()` adds to FastAPI's own document
every error status the server sends, with its body and an example, and a named example per form of
the /loss request and response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.examples import BATCH_LOSS_EXAMPLE, WORD_LOSS_EXAMPLE
from app.api.schemas import MODEL_MARK, TEXT_MARK
from app.settings import Settings
from model.engine.language_model import LanguageModel
from model.families import family_kinds


def _default_kib(setting: str) -> str:
    """A byte limit's default, as people read it: "16 KiB by default"."""
    return f"{Settings.model_fields[setting].default // 1024} KiB by default"


def _json_error(description: str, example: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorDetail"},
                "example": {"detail": example},
            }
        },
    }


def _text_error(description: str, example: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/plain": {"schema": {"type": "string"}, "example": example}},
    }


BAD_REQUEST = {
    "description": "The request is malformed: bad HTTP (plain text, from the HTTP server) or a body "
    "that is not parseable at all (JSON, from the app)",
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorDetail"},
            "example": {"detail": "There was an error parsing the body"},
        },
        "text/plain": {"schema": {"type": "string"}, "example": "Invalid HTTP request received."},
    },
}
NOT_READY = _json_error(
    "Not ready: the models are loading, or the server is shutting down; or the queue of heavy work is "
    "full (with Retry-After); or too many connections are open (plain text, from the HTTP server)",
    "the model is not loaded yet",
)
# Sent by the HTTP layer (app/http/server.py) before any route runs, as plain text, closing the connection.
HTTP_LIMITS: dict[str, dict[str, Any]] = {
    "408": _text_error(
        "The request line and headers (NAMEGEN_HEADER_TIMEOUT) or the body (NAMEGEN_BODY_TIMEOUT) did "
        "not arrive in time",
        "request not complete in time",
    ),
    "431": _text_error(
        "The request line and headers are larger than NAMEGEN_MAX_HEADER_BYTES "
        f"({_default_kib('max_header_bytes')})",
        "request line or headers too large",
    ),
}
BODY_ERRORS: dict[str, dict[str, Any]] = {
    "413": _text_error(
        f"The body is larger than NAMEGEN_MAX_BODY_BYTES ({_default_kib('max_body_bytes')})",
        "Content Too Large",
    ),
    "415": _json_error(
        "The body is not JSON",
        "send the body as JSON, 'Content-Type: application/json' (got text/plain)",
    ),
    "422": {
        "description": "Invalid body: not JSON, a wrong type, a value out of range, a character outside the "
        "model's alphabet, an unknown model; each error names its field",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/HTTPValidationError"},
                "example": {
                    "detail": [
                        {
                            "type": "value_error",
                            "loc": ["body", "prefix"],
                            "msg": "'a7' contains characters outside the alphabet: '7'",
                        }
                    ]
                },
            }
        },
    },
}
ERROR_DETAIL = {
    "title": "ErrorDetail",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}


def pattern(models: Iterable[LanguageModel], at_least_one: bool) -> str:
    """The rule as an ECMA/Python regular expression over the union of the models' input characters."""
    chars = sorted(set("".join(m.vocab.input_characters for m in models)))
    runs: list[list[str]] = []  # contiguous code points as ranges: [A-Za-z], not 52 characters
    for c in chars:
        if runs and ord(c) == ord(runs[-1][-1]) + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    ranges = "".join(re.escape(r[0]) + ("-" + re.escape(r[-1]) if len(r) > 1 else "") for r in runs)
    return rf"^[ \t\n\r]*[{ranges}]{'+' if at_least_one else '*'}[ \t\n\r]*$"


def _loaded_models_rules(app: FastAPI, components: dict[str, Any]) -> None:
    """Every field the schemas mark (`TEXT_MARK`, `MODEL_MARK`) gets what the loaded models accept:
    the text rule (`Vocab.normalise`) as a `pattern`, the models' names as an enum (an unknown model is a
    422). Derived from the schemas, so a new body with a prefix, a word or a model gets them too."""
    service = app.state.service
    models = list(service.models.values()) if service is not None else []
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            for node in (prop, prop.get("items", {})):
                text = node.pop(TEXT_MARK, None)
                if text is not None and models:
                    node["pattern"] = pattern(models, at_least_one=text == "letters")
                if node.pop(MODEL_MARK, None) and models:
                    node["anyOf"] = [{"type": "string", "enum": list(service.models)}, {"type": "null"}]


def _integer_bounds(components: dict[str, Any]) -> None:
    """Every integer field's bounds as integers: pydantic writes them as floats, and 2**63 - 1 is no
    float (a fuzzer reading 9.223372036854776e18 sends seeds past the real bound)."""
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            for node in (prop, *prop.get("anyOf", ())):
                if node.get("type") != "integer":
                    continue
                for bound in ("minimum", "maximum"):
                    if bound in node:
                        node[bound] = 2**63 - 1 if node[bound] >= 2**63 - 1 else int(node[bound])


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus every error status and the /loss examples (built once, then cached)."""
    if app.openapi_schema and app.state.service is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorDetail"] = ERROR_DETAIL
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            responses = operation["responses"]
            responses["400"] = BAD_REQUEST
            responses.update(HTTP_LIMITS)
            responses["503"] = NOT_READY
            if method == "post":
                responses.update(BODY_ERRORS)
            if "404" in responses and "content" not in responses["404"]:  # GET /models/{name}
                responses["404"] = _json_error(
                    responses["404"]["description"],
                    "unknown model 'lstm'; available: "
                    + ", ".join(f"names-{k}" for k in sorted(family_kinds())),
                )
    _loaded_models_rules(app, components)
    _integer_bounds(components)
    loss = schema["paths"]["/loss"]["post"]
    loss["requestBody"]["content"]["application/json"]["examples"] = {
        "one word": {"summary": "Score one name", "value": {"word": "emma"}},
        "a batch": {"summary": "Score several names at once", "value": {"words": ["emma", "xqzv"]}},
    }
    loss["responses"]["200"]["content"]["application/json"]["examples"] = {
        "one word": {"summary": 'For {"word": "emma"}', "value": WORD_LOSS_EXAMPLE},
        "a batch": {"summary": 'For {"words": ["emma", "xqzv"]}', "value": BATCH_LOSS_EXAMPLE},
    }
    _condition_rules(app, components)
    _condition_examples(app, schema)
    app.openapi_schema = schema
    return schema


def _condition_rules(app: FastAPI, components: dict[str, Any]) -> None:
    """What the loaded models accept as a `condition` (the keys and values of every conditional
    model: one of them, or none when no model takes one), and for /classify which models classify
    (a conditional one must be named when the default is not)."""
    service = app.state.service
    if service is None:
        return
    conditions: dict[str, list[str]] = {}
    for model in service.models.values():
        for key, values in model.conditions.items():
            conditions.setdefault(key, [])
            conditions[key] += [v for v in values if v not in conditions[key]]
    allowed: dict[str, Any] = {"type": "object", "additionalProperties": False, "maxProperties": 1}
    allowed["properties"] = {key: {"type": "string", "enum": values} for key, values in conditions.items()}
    takers = [name for name, model in service.models.items() if model.conditions]
    # a condition needs a model that takes one: named, or the default when it does
    needs: dict[str, Any] = {"properties": {"model": {"enum": takers}}, "required": ["model"]}
    if service.default.conditions:
        needs = {"properties": {"model": {"enum": [*takers, None]}}}
    for name, component in components.items():
        prop = component.get("properties", {}).get("condition")
        if name.endswith("Request") and prop is not None:
            prop["anyOf"][0] = allowed
            # no field-level example: alone it would pair a condition with the default model (the
            # named request examples pair it with a model that takes it)
            prop.pop("examples", None)
            if takers:
                component["if"] = {
                    "properties": {"condition": {"type": "object", "minProperties": 1}},
                    "required": ["condition"],
                }
                component["then"] = needs
    classify = components.get("ClassifyRequest")
    if classify is None or not takers:
        return
    model = classify["properties"]["model"]
    model["anyOf"] = [{"type": "string", "enum": takers}]
    if service.default.conditions:
        model["anyOf"].append({"type": "null"})
    else:
        model.pop("default", None)
        classify["required"] = sorted({*classify.get("required", []), "model"})
        model["description"] = "Which conditional model classifies (GET /models lists their `conditions`)."


def _condition_examples(app: FastAPI, schema: dict[str, Any]) -> None:
    """Named request examples with a condition, for the first loaded model that takes one."""
    service = app.state.service
    models = list(service.models.values()) if service is not None else []
    conditional = next((m for m in models if m.conditions), None)
    if conditional is None:
        return
    key, values = next(iter(conditional.conditions.items()))
    condition = {key: values[0]}
    bodies = {
        "/sample": {"model": conditional.name, "n": 5, "seed": 42, "condition": condition},
        "/next-char": {"model": conditional.name, "prefix": "jo", "condition": condition},
        "/loss": {"model": conditional.name, "word": "riley", "condition": condition},
    }
    for path, body in bodies.items():
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        examples = content.setdefault("examples", {})
        if not examples and "example" not in content:
            plain = {k: v for k, v in body.items() if k not in ("model", "condition")}
            examples["no condition"] = {"summary": "Any model", "value": plain}
        examples[f"{key} {values[0]}"] = {"summary": f"A {key} for {conditional.name}", "value": body}
