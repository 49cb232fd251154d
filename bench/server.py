"""The service as shipped plus `POST /bare`, the ceiling the real endpoints are measured against.

`/bare` runs on the same stack (uvicorn, uvloop, httptools, FastAPI, pydantic) and does the
least a JSON endpoint can: parse and validate a tiny body, return a constant.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from app.__main__ import serve
from app.main import create_app


class BareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    n: int = 1


def create_bench_app() -> FastAPI:
    app = create_app()

    @app.post("/bare")
    async def bare(req: BareRequest) -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    serve("bench.server:create_bench_app")
