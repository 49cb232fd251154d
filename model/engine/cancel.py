"""Stopping model work: when whoever asked for it has gone, or when it passes its budget.

The caller runs the work under `bounded(gone, seconds)` (a context variable, so it holds on the
worker thread the work runs on). The engine's long loops call `charge(seconds)` once per step with
that step's estimated cost (rows x `NextCharSource.step_seconds`): `Cancelled` once `gone` is set,
`OverBudget` once the estimates add up past `seconds`. The estimate is deterministic (rows, steps
and measured per-character costs, never a clock), so the same request meets its budget at the same
step on every run and every replica: bounded work keeps the seed contract. Each check is a context
variable read and a few float operations: well under a microsecond a step.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class Cancelled(Exception):
    """The work was stopped because whoever asked for it has gone."""


class OverBudget(Exception):
    """The work's estimated cost passed its budget (seconds of one worker)."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        super().__init__(f"more than {budget:g} s of model work")

    def __reduce__(self) -> tuple:  # pickled whole: a model process raises it for the server
        return (type(self), (self.budget,))


@dataclass
class _Bounds:
    gone: threading.Event | None
    budget: float
    left: float


_bounds: ContextVar[_Bounds | None] = ContextVar("namegen_work_bounds", default=None)


@contextmanager
def bounded(gone: threading.Event | None = None, seconds: float = math.inf) -> Iterator[None]:
    """Work inside this block stops at its next step once `gone` is set or `seconds` are spent."""
    token = _bounds.set(_Bounds(gone, seconds, seconds))
    try:
        yield
    finally:
        _bounds.reset(token)


def check() -> None:
    """Raise Cancelled when whoever asked for the work in progress has gone."""
    bounds = _bounds.get()
    if bounds is not None and bounds.gone is not None and bounds.gone.is_set():
        raise Cancelled("the client closed the connection; the work was stopped")


def charge(seconds: float) -> None:
    """Account for a step about to cost `seconds`; Cancelled or OverBudget instead of doing it."""
    bounds = _bounds.get()
    if bounds is None:
        return
    if bounds.gone is not None and bounds.gone.is_set():
        raise Cancelled("the client closed the connection; the work was stopped")
    bounds.left -= seconds
    if bounds.left < 0:
        raise OverBudget(bounds.budget)


def budget() -> float:
    """The whole budget of the work in progress, in seconds (inf outside `bounded`): what a step
    may size itself by and still answer the same on every run (`left` depends on what ran first)."""
    bounds = _bounds.get()
    return math.inf if bounds is None else bounds.budget


def left() -> float:
    """Seconds of budget left to the work in progress (inf outside `bounded`)."""
    bounds = _bounds.get()
    return math.inf if bounds is None else bounds.left
