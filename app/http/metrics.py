"""Prometheus metrics at GET /metrics (prometheus-client, default registry).

- namegen_http_requests_total{method, endpoint, status}: endpoint is the route template
  (`/models/{name}`), or "unmatched", and method one of `METHODS` or "other", so a scanner cannot
  blow up the label set.
- namegen_http_request_duration_seconds{method, endpoint}: latency histogram, from the first byte
  of the request to the last of the response, as the app sees it.
- namegen_names_sampled_total{model}: names returned by /sample.
- namegen_sample_batch_requests / namegen_sample_batch_names: per micro-batch (`app.serving.batching`),
  how many /sample requests shared one pass and how many names it drew.
- namegen_model_info{model, family, parameters, context, default}: one series per loaded model
  (refreshed at each scrape).
- prometheus-client's own process_* and python_* metrics.

The page is rendered on a thread, one render at a time shared by the scrapers waiting for it:
scrapers cannot hold the event loop.

The middleware is pure ASGI and caches each label set's child, so a request costs two dict look-ups,
a counter increment and a histogram observation (a few microseconds; tests/system/test_operations.py).
"""

from __future__ import annotations

import asyncio
from time import perf_counter

import anyio.to_thread
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, Info, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "namegen_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "endpoint", "status"],
)
LATENCY = Histogram(
    "namegen_http_request_duration_seconds",
    "Time from a request's arrival at the app to its last response byte",
    ["method", "endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
NAMES_SAMPLED = Counter("namegen_names_sampled", "Names returned by POST /sample", ["model"])
BATCH_REQUESTS = Histogram(
    "namegen_sample_batch_requests",
    "POST /sample requests drawn together in one micro-batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_NAMES = Histogram(
    "namegen_sample_batch_names",
    "Names drawn in one micro-batch",
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536),
)
MODELS = Info("namegen_model", "A loaded model", ["model"])
# The method label takes these values and "other": made-up methods cannot grow the label set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_batch(requests: int, names: int) -> None:
    BATCH_REQUESTS.observe(requests)
    BATCH_NAMES.observe(names)


def count_names(model: str, names: int) -> None:
    NAMES_SAMPLED.labels(model).inc(names)


class Metrics:
    """Count and time every HTTP request by its route template and status."""

    def __init__(self, app: ASGIApp, mounts: tuple[str, ...] = ("/static",)) -> None:
        self.app = app
        self.mounts = (
            mounts  # FastAPI records no route for a mounted app: its requests count as "/static/{path}"
        )
        self.counters: dict[tuple[str, str, int], Counter] = {}
        self.timers: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what the server answers when the app raises

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or self.mounted(scope["path"])
            method = scope["method"] if scope["method"] in METHODS else "other"
            counter = self.counters.get((method, endpoint, status))
            if counter is None:
                counter = self.counters[method, endpoint, status] = REQUESTS.labels(
                    method, endpoint, str(status)
                )
            timer = self.timers.get((method, endpoint))
            if timer is None:
                timer = self.timers[method, endpoint] = LATENCY.labels(method, endpoint)
            counter.inc()
            timer.observe(perf_counter() - start)

    def mounted(self, path: str) -> str:
        return next((f"{m}/{{path}}" for m in self.mounts if path.startswith(m + "/")), "unmatched")


router = APIRouter(include_in_schema=False)

_rendering: dict[str, asyncio.Future[bytes]] = {}  # the render in progress, if any


async def rendered() -> bytes:
    """The metrics page, rendered on a thread (not the event loop); scrapers that arrive while a
    render is in progress share it, so any number of them costs one render at a time."""
    future = _rendering.get("page")
    if future is None:
        future = _rendering["page"] = asyncio.ensure_future(anyio.to_thread.run_sync(generate_latest))
        future.add_done_callback(lambda _: _rendering.pop("page", None))
    return await asyncio.shield(future)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    service = request.app.state.service
    if service is not None:
        for model in service.models.values():
            MODELS.labels(model.name).info({
                "family": model.kind,
                "parameters": str(model.parameter_count),
                "context": str(model.context_limit),
                "default": str(model.name == service.default_name).lower(),
            })  # fmt: skip
    return Response(await rendered(), media_type=CONTENT_TYPE_LATEST)
