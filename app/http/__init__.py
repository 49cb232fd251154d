"""HTTP plumbing under every route (knows no model).

- `server`: uvicorn + httptools with the limits httptools lacks, and the SIGTERM drain.
- `middleware`: pure-ASGI request id, JSON-only POST bodies (415), HEAD as GET.
- `metrics`: Prometheus metrics and their middleware, GET /metrics.
- `logs`: uvicorn's logging with request ids, optionally JSON lines.
"""
