"""`python -m app`: serve on NAMEGEN_HOST:NAMEGEN_PORT with uvloop and httptools.

This is the one serve command: `make serve` and the Docker image both run it. Every setting comes
from a NAMEGEN_* environment variable (app/settings.py); a command-line flag overrides its variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Literal, get_args, get_origin

import uvicorn
from pydantic import ValidationError

from app.logs import log_config
from app.settings import Settings, get_settings

# flag -> (setting, help). Only the settings a person starting a server by hand reaches for; every
# other one stays an environment variable.
FLAGS: dict[str, tuple[str, str]] = {
    "--host": ("host", "interface to listen on"),
    "--port": ("port", "TCP port"),
    "--weights": ("weights", "a .safetensors checkpoint, or a directory whose every checkpoint is served"),
    "--default-model": ("default_model", "the model answering requests that name none (default: best val)"),
    "--device": ("device", "where the models run (auto: CUDA > MPS > CPU)"),
    "--workers": ("workers", "model worker threads (default: the usable CPUs)"),
    "--log-level": ("log_level", "the least severe level logged"),
    "--log-format": ("log_format", "json: one JSON object a line, request id included"),
    "--cors-origins": ("cors_origins", "comma-separated origins allowed to call the API from a browser"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Serve namegen over HTTP: the playground at /, API docs at /docs, metrics at /metrics.",
        epilog="Each flag overrides its NAMEGEN_* environment variable (in brackets, with the default). "
        "The other settings (limits such as NAMEGEN_MAX_N, NAMEGEN_MAX_BODY_BYTES) are environment "
        "variables only: see app/settings.py.",
    )
    for flag, (name, text) in FLAGS.items():
        field = Settings.model_fields[name]
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        shown = field.default if field.default not in (None, []) else "none"
        parser.add_argument(
            flag,
            dest=name,
            metavar=name.upper() if choices is None else None,
            choices=choices,
            help=f"{text} [NAMEGEN_{name.upper()}; default: {shown}]",
        )
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_const", const="false", help="no line per request"
    )
    return parser.parse_args(argv)


def apply_flags(args: argparse.Namespace) -> None:
    """Set each given flag's NAMEGEN_* variable: the app factory, which uvicorn calls, reads them."""
    for name, value in vars(args).items():
        if value is not None:
            os.environ[f"NAMEGEN_{name.upper()}"] = str(value)
    get_settings.cache_clear()


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
        log_config=log_config(settings.log_format),
        access_log=settings.access_log,
        loop="uvloop",
        http="httptools",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


def main(argv: list[str] | None = None) -> None:
    apply_flags(parse_args(argv))
    serve()


if __name__ == "__main__":
    main()
