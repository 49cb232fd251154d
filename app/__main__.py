"""`python -m app`: serve on NAMEGEN_HOST:NAMEGEN_PORT with uvloop and httptools.

This is the one serve command: `make serve` and the Docker image both run it.
"""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from app.settings import get_settings


def serve(app_factory: str = "app.main:create_app") -> None:
    """Run uvicorn on the app built by `app_factory`, configured from NAMEGEN_* settings."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"NAMEGEN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        sys.exit(f"namegen cannot start: bad setting: {problems}")
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        loop="uvloop",
        http="httptools",
    )


def main() -> None:
    serve()


if __name__ == "__main__":
    main()
