"""422 responses: FastAPI's own (rendered even when the bad input was NaN or Infinity), and a model's
ParameterError in the same format."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from model.engine.params import ParameterError


def _json_safe(value: Any) -> Any:
    """Non-finite floats (NaN, Infinity) have no JSON form: echo them back as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})


def parameter_errors(exc: ParameterError) -> list[dict[str, Any]]:
    """A model's ParameterError as FastAPI's 422 error entries."""
    return [{"type": "value_error", "loc": ["body", *loc], "msg": msg} for loc, msg in exc.problems]


async def parameter_error_handler(request: Request, exc: ParameterError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": parameter_errors(exc)})
