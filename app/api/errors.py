"""Responses: orjson bodies (`JSONBytes`, several times faster than the standard library), and the
error responses: FastAPI's 422 (rendered even when the bad input was NaN, Infinity or a lone
surrogate, and bounded in size), a model's ParameterError in the same format, and the 503 of a full
work queue. The limits of this server's settings (`over_limit`) raise a ParameterError too, so every
422 our own code sends takes one path.

A 422 lists at most `MAX_ERRORS` errors (then one saying how many more), and echoes each bad input
only when it is short: a 256 KiB body with tens of thousands of bad items is refused in well under a
millisecond of rendering instead of hundreds, and the event loop keeps routing.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response

from app.api.schemas import did_you_mean
from app.serving.processes import ProcessLost
from app.serving.rendered import as_json
from app.serving.workers import Overloaded
from model.engine.cancel import Cancelled, OverBudget
from model.engine.params import Loc, ParameterError


class JSONBytes(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=as_json)  # names from a model process: their JSON


MAX_ERRORS = 50
MAX_ECHO_CHARS = 200  # an input echoed back at most this long (as JSON); longer ones are left out


def _safe_text(text: str) -> str:
    """A string JSON can carry: a lone surrogate becomes its escape, as written in the request."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _json_safe(value: Any) -> Any:
    """Non-finite floats (NaN, Infinity) and integers past 64 bits have no JSON form here: echo them
    back as strings (a lone surrogate as its escape)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, dict):
        return {_safe_text(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)  # orjson writes 64-bit integers only
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _safe_text(str(value))  # e.g. a ValueError in `ctx`


class _TooLong(Exception):
    """An input's JSON passed the echo budget: the walk over it stops there."""


def _bounded(value: Any, budget: list[int]) -> Any:
    """`_json_safe(value)`, counting its JSON length down from budget[0]; _TooLong as soon as the
    budget is spent, so a 120,000-item list costs a few dozen items' work, not 120,000."""
    if isinstance(value, str) and len(value) > budget[0]:
        raise _TooLong  # its JSON is at least this long
    if isinstance(value, dict):
        budget[0] -= 2
        out = {}
        for key, item in value.items():
            text = _safe_text(str(key))[: budget[0] + 1]
            budget[0] -= len(text) + 4  # quotes, colon, comma
            if budget[0] < 0:
                raise _TooLong
            out[text] = _bounded(item, budget)
        return out
    if isinstance(value, list | tuple):
        budget[0] -= 2
        items = []
        for item in value:
            if budget[0] < 0:
                raise _TooLong
            items.append(_bounded(item, budget))
            budget[0] -= 1  # the comma
        return items
    safe = _json_safe(value)
    budget[0] -= len(orjson.dumps(safe))
    if budget[0] < 0:
        raise _TooLong
    return safe


def _short(value: Any) -> Any:
    """The input when its JSON is short, else nothing: a 422 never echoes a whole body back, and
    finding out costs O(MAX_ECHO_CHARS), not O(input), of event-loop time."""
    try:
        value = _bounded(value, [MAX_ECHO_CHARS])
    except _TooLong:
        return None
    return value if len(orjson.dumps(value)) <= MAX_ECHO_CHARS else None


def render_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = []
    for error in errors[:MAX_ERRORS]:
        entry = {k: _json_safe(v) for k, v in error.items() if k not in ("input", "url")}
        if "input" in error:
            echo = _short(error["input"])
            if echo is not None or error["input"] is None:
                entry["input"] = echo
        shown.append(entry)
    if len(errors) > MAX_ERRORS:
        shown.append({
            "type": "too_many_errors", "loc": ["body"],
            "msg": f"{len(errors) - MAX_ERRORS} more errors not shown ({len(errors)} in all)",
        })  # fmt: skip
    return shown


def _json(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(content, status_code=status, headers=headers)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> Response:
    errors = list(exc.errors())
    fields = request.app.state.body_fields.get(request.scope["path"], ())
    for error in errors[:MAX_ERRORS]:  # an unknown field: say what was probably meant
        loc = error.get("loc", ())
        if error.get("type") == "extra_forbidden" and len(loc) == 2 and isinstance(loc[1], str):
            error["msg"] = did_you_mean(loc[1], fields)
    return _json(422, {"detail": render_errors(errors)})


def parameter_errors(exc: ParameterError) -> list[dict[str, Any]]:
    """A model's ParameterError as FastAPI's 422 error entries."""
    return [{"type": "value_error", "loc": ["body", *loc], "msg": msg} for loc, msg in exc.problems]


async def parameter_error_handler(request: Request, exc: ParameterError) -> Response:
    return _json(422, {"detail": render_errors(parameter_errors(exc))})


async def cancelled_handler(request: Request, exc: Cancelled) -> Response:
    """Work stopped because its client hung up: nobody reads this; 499 (nginx's "client closed
    request") keeps it apart from real errors in the metrics and the access log."""
    return _json(499, {"detail": str(exc)})


async def over_budget_handler(request: Request, exc: OverBudget) -> Response:
    """Work stopped at its budget (NAMEGEN_MAX_WORK_SECONDS): a 422 saying what to ask for instead."""
    msg = (
        f"this request needed {exc}; this server allows {exc.budget:g} s a request "
        "(NAMEGEN_MAX_WORK_SECONDS): ask for fewer names or a shorter max_length"
    )
    return _json(422, {"detail": [{"type": "value_error", "loc": ["body"], "msg": msg}]})


async def overloaded_handler(request: Request, exc: Overloaded | ProcessLost) -> Response:
    return _json(503, {"detail": str(exc)}, headers={"Retry-After": str(exc.retry_after)})


def over_limit(loc: Loc, what: str, value: int, limit: int, where: str = "") -> list[tuple[Loc, str]]:
    """The problem of a value past one of this server's settings (none when within it)."""
    if value <= limit:
        return []
    return [(loc, f"{what} is {value}; this server allows at most {limit}" + (f" {where}" if where else ""))]


def raise_problems(problems: list[tuple[Loc, str]]) -> None:
    """Settings limits fail as the model's own checks do: one ParameterError, one 422 path."""
    if problems:
        raise ParameterError.of(problems)
