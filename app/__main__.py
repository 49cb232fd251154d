"""`python -m app`: serve on NAMEGEN_HOST:NAMEGEN_PORT with uvloop and httptools."""

from __future__ import annotations

import uvicorn

from app.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
