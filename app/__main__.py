"""`python -m app`: serve on NAMEGEN_HOST:NAMEGEN_PORT with uvloop and httptools.

This is the one serve command: `make serve` and the Docker image both run it. Every setting comes
from a NAMEGEN_* environment variable (app/settings.py); a command-line flag overrides its variable.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
import resource
import socket
import sys
from collections.abc import Mapping
from typing import Literal, get_args, get_origin

import uvicorn
from pydantic import ValidationError
from uvicorn.importer import import_from_string
from uvicorn.main import STARTUP_FAILURE

from app.http.logs import log_config
from app.http.server import Limits, Server, protocol_class
from app.settings import FLAG_NAMES, Settings, get_settings, setting_label

# flag -> (setting, help). Only the settings a person starting a server by hand reaches for; every
# other one stays an environment variable.
FLAGS: dict[str, tuple[str, str]] = {
    "--host": ("host", "interface to listen on"),
    "--port": ("port", "TCP port"),
    "--weights": ("weights", "a .safetensors checkpoint, or a directory whose every checkpoint is served"),
    "--default-model": ("default_model", "the model answering requests that name none (default: best val)"),
    "--device": ("device", "where the models run (auto: CUDA > MPS > CPU)"),
    "--workers": ("workers", "model worker threads (default: the usable CPUs)"),
    "--processes": ("processes", "model processes for forward passes (default: a worker each if 2+, <= 4)"),
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


def flag_of(name: str) -> str:
    """The flag that sets setting `name`."""
    return next((flag for flag, (setting, _) in FLAGS.items() if setting == name), "--no-access-log")


def apply_flags(args: argparse.Namespace) -> None:
    """Set each given flag's NAMEGEN_* variable: the app factory, which uvicorn calls, reads them."""
    for name, value in vars(args).items():
        if value is not None:
            os.environ[f"NAMEGEN_{name.upper()}"] = str(value)
            FLAG_NAMES[name] = flag_of(name)
    get_settings.cache_clear()


def misspelled_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each NAMEGEN_* variable that is no setting, naming the closest one."""
    environ = os.environ if environ is None else environ
    known = [name.upper() for name in Settings.model_fields]
    warnings = []
    for name in sorted(environ):
        if name.startswith("NAMEGEN_") and name[8:].upper() not in known:
            close = difflib.get_close_matches(name[8:].upper(), known, n=1, cutoff=0.6)
            hint = (
                f"did you mean NAMEGEN_{close[0]}?"
                if close
                else "settings: " + ", ".join(f"NAMEGEN_{k}" for k in known)
            )
            warnings.append(f"namegen: warning: {name} is not a setting and is ignored ({hint})")
    return warnings


def check_address(host: str, port: int, setting: str | None = None) -> str | None:
    """Why NAMEGEN_HOST:NAMEGEN_PORT cannot be listened on, naming the setting; None if it can.

    Checked before the models load (seconds), with the options uvicorn binds with."""
    setting = setting or setting_label("port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"{setting_label('host')} {host!r} is not an address of this machine: {exc}"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return f"{setting} {port}: cannot listen on {host}:{port}: {reason}"
                return f"{setting_label('host')} {host!r}: cannot listen on {host}:{port}: {reason}"
    return None


FILES_BESIDE_CONNECTIONS = 256  # checkpoints, logs, the listening sockets, probe connections, threads' own


def check_file_limit(max_connections: int) -> str | None:
    """Raise the open-file limit to what NAMEGEN_MAX_CONNECTIONS needs (up to the hard limit); past
    the limit accept() fails and new clients hang with only a log line. None when it fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + FILES_BESIDE_CONNECTIONS
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft >= needed:
        return None
    return (
        f"NAMEGEN_MAX_CONNECTIONS {max_connections} needs about {needed} open files but this process "
        f"may open {soft} (ulimit -n; hard limit {hard}): lower the setting or raise the limit"
    )


def serve(app_factory: str = "app.main:create_app") -> None:
    """Run uvicorn on the app built by `app_factory`, configured from NAMEGEN_* settings, with the
    limits of app.http.server."""
    for warning in misspelled_settings():
        print(warning, file=sys.stderr)
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{setting_label('_'.join(map(str, e['loc'])))}: {e['msg']}" for e in exc.errors()
        )
        sys.exit(f"namegen cannot start: bad setting: {problems}")
    problems = [check_address(settings.host, settings.port), check_file_limit(settings.max_connections)]
    if settings.probe_port is not None:
        if settings.probe_port == settings.port:
            problems.append(
                f"NAMEGEN_PROBE_PORT {settings.probe_port} is {setting_label('port')}: it needs its own"
            )
        else:
            problems.append(check_address(settings.host, settings.probe_port, "NAMEGEN_PROBE_PORT"))
    for problem in problems:
        if problem is not None:
            sys.exit(f"namegen cannot start: {problem}")
    limits = Limits.of(settings)
    app = import_from_string(app_factory)()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config(settings.log_format),
        access_log=settings.access_log,
        loop="uvloop",
        http=protocol_class(limits),
        # no limit_concurrency: the protocol's connection cap is the one refusal (uvicorn's would
        # also 503 requests on connections already open)
        timeout_keep_alive=settings.keep_alive_timeout,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = Server(
        config,
        on_drain=lambda: setattr(app.state, "draining", True),
        drain_delay=settings.drain_delay,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # the lifespan failed; its one line is logged


def main(argv: list[str] | None = None) -> None:
    apply_flags(parse_args(argv))
    serve()


if __name__ == "__main__":
    main()
