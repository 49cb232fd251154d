"""A typed Python client for the namegen HTTP API, sync and async; it needs only httpx.

    from namegen_client import NamegenClient

    with NamegenClient("http://127.0.0.1:8000") as client:
        for s in client.sample(5, seed=42).names:
            print(s.name, round(s.loss, 3))
        print(client.sample(3, constraints={"ends_with": "lyn", "length": [5, 8]}).constraint)
        print(client.loss("emma").loss)
        gendered = "names-gru-gender"  # GET /models lists the conditions each model takes
        print(client.sample(5, model=gendered, seed=1, condition={"gender": "female"}).names)
        print(client.classify(["emma", "john"], model=gendered).results[0].gender)  # {"female": 0.99...

`AsyncNamegenClient` has the same methods as coroutines. The server is `base_url`, else the
NAMEGEN_URL environment variable, else http://127.0.0.1:8000. Every failure raises a
`NamegenError`: `NamegenStatusError` for a 4xx or 5xx answer (its status, the server's `detail`
and the request id), `NamegenConnectionError` when the server cannot be reached and
`NamegenTimeoutError` when it does not answer in time. A 503 (queue full, starting, draining) or
a refused connection is retried `max_retries` times (default 2), after the server's Retry-After
or a doubling backoff from 0.5 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, Unpack, overload
from urllib.parse import quote

import httpx

from namegen_client.errors import (
    NamegenConnectionError,
    NamegenError,
    NamegenStatusError,
    NamegenTimeoutError,
)
from namegen_client.transport import Retries, send, send_async

T = TypeVar("T")

__all__ = [
    "AsyncNamegenClient",
    "BatchLoss",
    "CharProb",
    "CharScore",
    "Classification",
    "Condition",
    "ConstraintInfo",
    "Constraints",
    "ModelInfo",
    "ModelList",
    "NamegenClient",
    "NamegenConnectionError",
    "NamegenError",
    "NamegenStatusError",
    "NamegenTimeoutError",
    "NextChar",
    "SampleOptions",
    "SampleResult",
    "SampledName",
    "WordClass",
    "WordLoss",
]

DEFAULT_URL = "http://127.0.0.1:8000"  # when neither base_url nor NAMEGEN_URL is given


def _base_url(base_url: str | None) -> str:
    return base_url or os.environ.get("NAMEGEN_URL") or DEFAULT_URL


@dataclass(frozen=True)
class SampledName:
    name: str
    loss: float  # mean NLL in nats per character, end included
    novel: bool  # not in the model's training word list
    truncated: bool  # cut at max_length
    percentile: float | None = None  # % of real held-out names the model finds less likely


@dataclass(frozen=True)
class ConstraintInfo:
    """How constrained names (or a conditional next character) were drawn."""

    method: str  # "exact", "rejection" or "smc"
    p_constraint: float  # P(a name satisfies the constraints | prefix), exact or estimated
    draws: int  # names and particles drawn
    ess: float | None = None  # SMC only: mean effective sample size of a group


@dataclass(frozen=True)
class SampleResult:
    model: str
    names: list[SampledName]
    complete: bool  # False when fewer than n were found (resampled: novel, distinct, ...; constrained)
    reason: str | None
    constraint: ConstraintInfo | None = None  # only when constraints were given


@dataclass(frozen=True)
class CharProb:
    char: str  # "." is the end of the name
    prob: float


@dataclass(frozen=True)
class NextChar:
    prefix: str
    distribution: list[CharProb]  # every vocabulary entry, likeliest first
    constraint: ConstraintInfo | None = None  # only when constraints were given

    def as_dict(self) -> dict[str, float]:
        return {c.char: c.prob for c in self.distribution}


@dataclass(frozen=True)
class CharScore:
    char: str
    prob: float
    nll: float


@dataclass(frozen=True)
class WordLoss:
    word: str
    loss: float
    perplexity: float
    chars: list[CharScore]
    percentile: float | None = None  # % of real held-out names the model finds less likely


@dataclass(frozen=True)
class BatchLoss:
    results: list[WordLoss]
    mean_loss: float
    perplexity: float
    predictions: int


@dataclass(frozen=True)
class WordClass:
    word: str
    gender: dict[str, float]  # p(value | word) for each value, summing to 1


@dataclass(frozen=True)
class Classification:
    model: str
    prior: dict[str, dict[str, float]]  # the training prior per condition key
    results: list[WordClass]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    parameters: int
    context: int | None
    alphabet: str
    default: bool
    config: dict[str, Any]
    metrics: dict[str, Any]
    data: dict[str, Any]
    train_command: str | None
    device: str | None = None  # only from GET /model
    conditions: dict[str, list[str]] | None = None  # e.g. {"gender": ["female", "male"]}


@dataclass(frozen=True)
class ModelList:
    default: str
    models: list[ModelInfo]


# ---- requests and responses, shared by both clients


class Constraints(TypedDict, total=False):
    """What every name must satisfy (the API's `constraints` object): any of these keys."""

    ends_with: str
    contains: list[str]
    excludes: list[str]
    length: list[int]  # [min, max], inclusive
    regex: str  # a full match over the model's alphabet


class SampleOptions(TypedDict, total=False):
    """POST /sample's fields besides `n` and `model`, by their API names; what is left out takes
    the server's default (see /docs)."""

    temperature: float
    top_k: int | None
    top_p: float | None
    prefix: str
    max_length: int
    seed: int | None
    novel: bool
    distinct: bool
    exclude: list[str]
    min_distance: int
    constraints: Constraints
    condition: dict[str, str] | None  # e.g. {"gender": "female"}, for a conditional model


Condition = dict[str, str] | None  # {"gender": "female"}; None: no condition


def _with_condition(body: dict[str, Any], condition: Condition) -> dict[str, Any]:
    return body if condition is None else {**body, "condition": condition}


def _classification(data: dict[str, Any]) -> Classification:
    return Classification(data["model"], data["prior"], [WordClass(**r) for r in data["results"]])


def _sample_body(n: int, model: str | None, options: SampleOptions) -> dict[str, Any]:
    return _with_model({"n": n, **options}, model)


def _with_model(body: dict[str, Any], model: str | None) -> dict[str, Any]:
    return body if model is None else {**body, "model": model}


def _loss_body(words: str | list[str], model: str | None, condition: Condition = None) -> dict[str, Any]:
    body = {"word": words} if isinstance(words, str) else {"words": list(words)}
    return _with_condition(_with_model(body, model), condition)


def _constraint(data: dict[str, Any] | None) -> ConstraintInfo | None:
    return None if data is None else _known(ConstraintInfo, data)


def _known(cls: type[T], data: dict[str, Any]) -> T:
    """`cls` from the fields it knows: a newer server may send more, and this client keeps working."""
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return cls(**{k: v for k, v in data.items() if k in fields})


def _sample_result(data: dict[str, Any]) -> SampleResult:
    return SampleResult(
        data["model"],
        [_known(SampledName, s) for s in data["names"]],
        data["complete"],
        data.get("reason"),
        _constraint(data.get("constraint")),
    )


def _next_char_body(
    prefix: str, model: str | None, constraints: Constraints | None, max_length: int | None, seed: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"prefix": prefix}
    if constraints is not None:
        body["constraints"] = constraints
    if max_length is not None:
        body["max_length"] = max_length
    if seed is not None:
        body["seed"] = seed
    return _with_model(body, model)


def _next_char(data: dict[str, Any]) -> NextChar:
    return NextChar(
        data["prefix"], [CharProb(**c) for c in data["distribution"]], _constraint(data.get("constraint"))
    )


def _word_loss(data: dict[str, Any]) -> WordLoss:
    chars = [CharScore(**c) for c in data["chars"]]
    return WordLoss(data["word"], data["loss"], data["perplexity"], chars, data.get("percentile"))


def _loss(data: dict[str, Any]) -> WordLoss | BatchLoss:
    if "results" in data:
        results = [_word_loss(r) for r in data["results"]]
        return BatchLoss(results, data["mean_loss"], data["perplexity"], data["predictions"])
    return _word_loss(data)


def _model_info(data: dict[str, Any]) -> ModelInfo:
    fields = ModelInfo.__dataclass_fields__
    return ModelInfo(**{k: v for k, v in data.items() if k in fields})


def _model_list(data: dict[str, Any]) -> ModelList:
    return ModelList(data["default"], [_model_info(m) for m in data["models"]])


class NamegenClient:
    """Blocking client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        client: httpx.Client | None = None,
    ) -> None:
        self._http = client or httpx.Client(base_url=_base_url(base_url), timeout=timeout)
        self._retries = Retries(max_retries=max_retries)

    def __enter__(self) -> NamegenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str) -> Any:
        return send(self._http, self._retries, "GET", path)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return send(self._http, self._retries, "POST", path, body)

    def sample(
        self, n: int = 10, *, model: str | None = None, **options: Unpack[SampleOptions]
    ) -> SampleResult:
        """Invent `n` names (POST /sample); `options` are the request's other fields by name."""
        return _sample_result(self._post("/sample", _sample_body(n, model, options)))

    def next_char(
        self,
        prefix: str = "",
        *,
        model: str | None = None,
        constraints: Constraints | None = None,
        max_length: int | None = None,
        seed: int | None = None,
        condition: Condition = None,
    ) -> NextChar:
        """The probability of every next character after `prefix` (POST /next-char); with
        `constraints`, given that the name satisfies them."""
        body = _with_condition(_next_char_body(prefix, model, constraints, max_length, seed), condition)
        return _next_char(self._post("/next-char", body))

    @overload
    def loss(self, words: str, *, model: str | None = None, condition: Condition = None) -> WordLoss: ...
    @overload
    def loss(
        self, words: list[str], *, model: str | None = None, condition: Condition = None
    ) -> BatchLoss: ...
    def loss(
        self, words: str | list[str], *, model: str | None = None, condition: Condition = None
    ) -> WordLoss | BatchLoss:
        """Score one name (a str) or many (a list) (POST /loss)."""
        return _loss(self._post("/loss", _loss_body(words, model, condition)))

    def classify(self, words: list[str], *, model: str | None = None) -> Classification:
        """p(gender | word) for each word by a conditional model (POST /classify)."""
        return _classification(self._post("/classify", _with_model({"words": list(words)}, model)))

    def models(self) -> ModelList:
        """Every loaded model and which is the default (GET /models)."""
        return _model_list(self._get("/models"))

    def model(self, name: str | None = None) -> ModelInfo:
        """One loaded model (GET /models/{name}); the default, with its device, when `name` is None."""
        return _model_info(self._get("/model" if name is None else f"/models/{quote(name, safe='')}"))

    def health(self) -> bool:
        """True once the server has loaded its models; NamegenError (503) before."""
        return self._get("/health").get("status") == "ok"


class AsyncNamegenClient:
    """The same methods as `NamegenClient`, as coroutines. Use `async with`, or await `aclose()`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = client or httpx.AsyncClient(base_url=_base_url(base_url), timeout=timeout)
        self._retries = Retries(max_retries=max_retries)

    async def __aenter__(self) -> AsyncNamegenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str) -> Any:
        return await send_async(self._http, self._retries, "GET", path)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return await send_async(self._http, self._retries, "POST", path, body)

    async def sample(
        self, n: int = 10, *, model: str | None = None, **options: Unpack[SampleOptions]
    ) -> SampleResult:
        return _sample_result(await self._post("/sample", _sample_body(n, model, options)))

    async def next_char(
        self,
        prefix: str = "",
        *,
        model: str | None = None,
        constraints: Constraints | None = None,
        max_length: int | None = None,
        seed: int | None = None,
        condition: Condition = None,
    ) -> NextChar:
        body = _with_condition(_next_char_body(prefix, model, constraints, max_length, seed), condition)
        return _next_char(await self._post("/next-char", body))

    @overload
    async def loss(
        self, words: str, *, model: str | None = None, condition: Condition = None
    ) -> WordLoss: ...
    @overload
    async def loss(
        self, words: list[str], *, model: str | None = None, condition: Condition = None
    ) -> BatchLoss: ...
    async def loss(
        self, words: str | list[str], *, model: str | None = None, condition: Condition = None
    ) -> WordLoss | BatchLoss:
        return _loss(await self._post("/loss", _loss_body(words, model, condition)))

    async def classify(self, words: list[str], *, model: str | None = None) -> Classification:
        return _classification(await self._post("/classify", _with_model({"words": list(words)}, model)))

    async def models(self) -> ModelList:
        return _model_list(await self._get("/models"))

    async def model(self, name: str | None = None) -> ModelInfo:
        return _model_info(await self._get("/model" if name is None else f"/models/{quote(name, safe='')}"))

    async def health(self) -> bool:
        return (await self._get("/health")).get("status") == "ok"
