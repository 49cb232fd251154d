"""A plain FastAPI endpoint, the ceiling of the stack itself: `POST /plain` on uvicorn with uvloop
and httptools, a small pydantic body and a fixed answer, and none of the service's middleware (the
service's own `/bare`, in `bench.server`, carries it). `make bench` reports every endpoint's
requests/s against both.
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict


class PlainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    n: int = 1


def create_plain_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/plain")
    async def plain(req: PlainRequest) -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_plain_app(),
        host=os.environ.get("NAMEGEN_HOST", "127.0.0.1"),
        port=int(os.environ.get("NAMEGEN_PORT", "8000")),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
