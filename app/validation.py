"""Limits set by this server's settings, reported as 422s in FastAPI's own format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError


def field_error(loc: Sequence[str | int], message: str, value: Any) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", *loc), "msg": message, "input": value}


def raise_if_errors(errors: list[dict[str, Any]]) -> None:
    if errors:
        raise RequestValidationError(errors)


def limit_errors(value: int, limit: int, loc: Sequence[str | int], what: str) -> list[dict[str, Any]]:
    if value > limit:
        return [field_error(loc, f"{what} is {value}; this server allows at most {limit}", value)]
    return []
