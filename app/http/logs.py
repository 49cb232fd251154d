"""uvicorn's logging, with the request id on every line and, with NAMEGEN_LOG_FORMAT=json, as JSON lines."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from uvicorn.config import LOGGING_CONFIG

from app.http.middleware import REQUEST_ID


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served ('-' outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line; an access line also gets its fields (client, method, path, status)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            line.update(client=client, method=method, path=path, http_version=http_version, status=status)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's LOGGING_CONFIG with the request id added: appended to text lines, a field in JSON."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": RequestIdFilter}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    if log_format == "json":
        config["formatters"] = {name: {"()": JsonFormatter} for name in config["formatters"]}
    else:
        config["formatters"]["access"]["fmt"] += " request_id=%(request_id)s"
    return config
