"""Service settings from the environment (prefix NAMEGEN_), one pydantic-settings class, and the
HTTP contract's hard limits (the README's "The API"), which settings may lower, never raise."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.engine import knobs

MAX_N = 1000
MAX_EXPORT_N = 100_000  # names in one CSV or NDJSON answer of /sample (streamed chunk by chunk)
MAX_WORDS = 1000
MAX_LENGTH = 64
MAX_TEMPERATURE = 5.0
MAX_VOCAB = 27  # top_k at most: the vocabulary of every committed model (a-z and the end token)


def default_weights() -> Path:
    """The checkout's weights/ beside app/, else the copy an installed namegen ships in
    <prefix>/share/namegen/weights."""
    checkout = Path(__file__).resolve().parents[1] / "weights"
    installed = Path(sys.prefix) / "share" / "namegen" / "weights"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


DEFAULT_WEIGHTS = default_weights()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAMEGEN_", extra="ignore")

    weights: Path = Field(
        DEFAULT_WEIGHTS, description="a directory whose every .safetensors checkpoint is served, or one file"
    )
    default_model: str | None = Field(
        None, description="the model used when a request names none (default: the best on val)"
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto: CUDA > MPS > CPU")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = Field(True, description="log one line per request")
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per log line")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="comma-separated origins allowed to call the API from a browser (none by default)"
    )
    max_n: int = Field(MAX_N, ge=1, le=MAX_N, description="most names one /sample may ask for")
    max_export_n: int = Field(
        MAX_EXPORT_N,
        ge=1,
        le=MAX_EXPORT_N,
        description="most names one /sample may stream as CSV or NDJSON (the Accept header)",
    )
    max_words: int = Field(MAX_WORDS, ge=1, le=MAX_WORDS, description="most words one /loss may score")
    max_length: int = Field(MAX_LENGTH, ge=1, le=MAX_LENGTH, description="longest name, prefix or word")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="larger request bodies get 413")
    max_work_seconds: float = Field(
        2.0,
        gt=0,
        le=600,
        description="estimated seconds of model work one request may cost (characters x each family's "
        "cost per character); more gets 422",
    )
    novel_max_rounds: int = Field(
        knobs.NOVEL_MAX_ROUNDS, ge=1, le=100, description="resampling rounds for novel names"
    )
    workers: int | None = Field(None, ge=1, description="model worker threads (default: the usable CPUs)")
    processes: int | None = Field(
        None,
        ge=0,
        le=64,
        description="model processes for forward-pass models (default: as many as the worker threads when "
        "2 or more, at most 4; else 0); 0: their work runs on the worker threads",
    )
    max_queue: int = Field(
        256, ge=1, le=100_000, description="model jobs waiting or running at most; more get 503 + Retry-After"
    )
    # HTTP limits uvicorn enforces (app/__main__.py)
    max_connections: int = Field(
        512, ge=1, le=100_000, description="connections open at once at most; a new one past it gets 503"
    )
    probe_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="a second port serving only GET /health (own connection cap): probes pass a full cap",
    )
    # Longer than common clients' idle timeouts (5 s in httpx, Node's agent, Go's default transport
    # reuses for 90 s but retries; browsers 5-300 s): a client must give up an idle connection
    # before the server closes it, or a request sent just as the server closes fails.
    keep_alive_timeout: float = Field(
        15.0, gt=0, le=300, description="seconds an idle connection stays open (above clients' 5 s)"
    )
    max_probe_connections: int = Field(
        8, ge=1, le=1000, description="connections the probe port takes at once; more get 503"
    )
    forwarded_allow_ips: str = Field(
        "",
        description="comma-separated proxy addresses trusted for X-Forwarded-For/-Proto (none by default)",
    )
    shutdown_timeout: float = Field(
        20.0, gt=0, le=600, description="seconds after SIGTERM for accepted requests to finish, then exit"
    )
    # HTTP limits app/http/server.py adds to uvicorn's
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, le=1024 * 1024, description="longest request line + headers; more get 431"
    )
    header_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds to send a request's headers (from its first byte); else 408"
    )
    body_timeout: float = Field(
        30.0, gt=0, le=300, description="seconds to send a request's body after its headers; else 408"
    )
    send_timeout: float = Field(
        30.0, gt=0, le=600, description="seconds a client may read nothing of a response before it is dropped"
    )
    # uvloop keeps a whole response while any of it is unsent: the memory held can be a few times this
    max_unsent_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024 * 1024,
        description="response bytes all clients not reading may hold; the longest stalled is dropped",
    )
    drain_delay: float = Field(
        0.0, ge=0, le=300, description="seconds after SIGTERM that /health answers 503 while serving goes on"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


# The settings `python -m app` was given as flags, by setting name (`app.__main__.apply_flags`): a
# start-up error about one names the flag the person typed, not only its variable.
FLAG_NAMES: dict[str, str] = {}


def setting_label(name: str) -> str:
    """How a start-up error names setting `name`: "--port (NAMEGEN_PORT)" when it came from a flag."""
    variable = f"NAMEGEN_{name.upper()}"
    return f"{FLAG_NAMES[name]} ({variable})" if name in FLAG_NAMES else variable


@lru_cache
def get_settings() -> Settings:
    return Settings()
