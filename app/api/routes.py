"""Thin handlers: validate -> one model call -> shape the response.

The model raises a ParameterError for anything only it can judge (characters outside its
alphabet, top_k above its vocabulary); `app.api.errors` turns it into a 422 naming the field. The
runner (`app.serving.workers`) decides whether the work runs inline or on a worker thread.
Responses are plain dicts serialised by orjson (`JSONBytes`), skipping FastAPI's re-validation
of what our own code built; `response_model` still documents them, and tests validate real
responses against those models.
"""

from __future__ import annotations

import math
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from starlette.responses import Response

from app.api.errors import JSONBytes, over_limit, raise_problems
from app.api.export import ACCEPT_HELP, EXPORT_CONTENT, EXPORT_HINT, export_format, export_response
from app.api.schemas import (
    BatchLoss,
    ClassifyRequest,
    ClassifyResponse,
    Health,
    LossRequest,
    ModelInfo,
    ModelList,
    NextCharRequest,
    NextCharResponse,
    SampleRequest,
    SampleResponse,
    ServedModelInfo,
    WordLoss,
    constraint_info,
)
from app.http.metrics import count_names
from app.http.server import CLIENT_GONE
from app.serving.processes import ModelCall
from app.serving.service import Service
from model.engine.language_model import Condition, LanguageModel, WordScore
from model.engine.params import Loc, ParameterError, SamplingParams


async def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        raise HTTPException(status_code=503, detail="the model is not loaded yet")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]  # what handlers declare: `service: ServiceDep`


def client_gone(request: Request) -> threading.Event | None:
    """Set once the request's client has hung up (app.http.server; None in process, under a test
    client): its model work then does not start, or stops at its next step."""
    return request.scope.get(CLIENT_GONE)


router = APIRouter(default_response_class=JSONBytes)


@router.get(
    "/health",
    response_model=Health,
    summary="200 once the models are loaded, 503 before and once shutting down",
)
async def health(service: ServiceDep, request: Request) -> JSONBytes:
    if request.app.state.draining:  # not ready: a balancer takes this replica out before it stops
        return JSONBytes({"status": "shutting down"}, status_code=503, headers={"Connection": "close"})
    return JSONBytes({"status": "ok"})


@router.get("/models", response_model=ModelList, summary="Every loaded model")
async def list_models(service: ServiceDep) -> JSONBytes:
    return JSONBytes({
        "default": service.default_name,
        "models": [service.describe(model) for model in service.models.values()],
    })  # fmt: skip


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    summary="One loaded model",
    responses={404: {"description": "No model of that name is loaded"}},
)
async def model_by_name(name: str, service: ServiceDep) -> JSONBytes:
    if name not in service.models:
        return JSONBytes(
            {"detail": f"unknown model {name!r}; available: {', '.join(service.models)}"}, status_code=404
        )
    return JSONBytes(service.describe(service.models[name]))


@router.get("/model", response_model=ServedModelInfo, summary="The default model, and the device")
async def default_model(service: ServiceDep) -> JSONBytes:
    model = service.default
    return JSONBytes({**service.describe(model), "device": str(model.device)})


@router.post(
    "/sample",
    response_model=SampleResponse,
    summary="Invent new names",
    responses={200: {"content": EXPORT_CONTENT, "description": "The names: JSON, or streamed CSV or NDJSON"}},
)
async def sample(
    req: SampleRequest,
    service: ServiceDep,
    request: Request,
    accept: Annotated[str | None, Header(description=ACCEPT_HELP)] = None,
) -> Response:
    settings = service.settings
    kind = export_format(accept)
    if kind is None:
        n_limit = over_limit(("n",), "n", req.n, settings.max_n, f"in a JSON answer ({EXPORT_HINT})")
    else:
        n_limit = over_limit(("n",), "n", req.n, settings.max_export_n, f"as {kind}")
    raise_problems([
        *n_limit,
        *over_limit(("max_length",), "max_length", req.max_length, settings.max_length),
    ])  # fmt: skip
    model = service.model(req.model)
    constraints = req.constraints.engine() if req.constraints is not None else None
    if kind is not None:
        return await export_response(
            service,
            model,
            req.n,
            req.params(),
            req.seed,
            novel=req.novel,
            kind=kind,
            constraints=constraints,
            condition=req.condition,
        )
    result = await service.sample(
        model,
        req.n,
        req.params(),
        req.seed,
        novel=req.novel,
        constraints=constraints,
        gone=client_gone(request),
        condition=req.condition,
    )
    count_names(model.name, len(result.names))
    body = {
        "model": model.name,
        "names": result.names,  # Sample dataclasses: orjson writes them natively (asdict: ~4.5 us each)
        "complete": result.complete,
        "reason": result.reason,
    }
    if result.constraint is not None:
        body["constraint"] = constraint_info(result.constraint)
    return JSONBytes(body)


@router.post("/next-char", response_model=NextCharResponse, summary="Next-character distribution")
async def next_char(req: NextCharRequest, service: ServiceDep, request: Request) -> JSONBytes:
    raise_problems(over_limit(("prefix",), "the prefix length", len(req.prefix), service.settings.max_length))
    model = service.model(req.model)
    service.check_condition(model, req.condition)
    constraints = req.constraints.engine() if req.constraints is not None else None
    if constraints is None or constraints.empty:
        prefix, probs = await service.next_char(model, req.prefix, req.condition, client_gone(request))
        report = None
    else:
        raise_problems(over_limit(("max_length",), "max_length", req.max_length, service.settings.max_length))
        params = SamplingParams(prefix=req.prefix, max_length=req.max_length).checked(model.vocab)
        probs, report = await service.runner.run(
            model,
            ModelCall("conditional_next_char", (params, constraints, req.seed, req.condition)),
            names=model.constraint_budget,
            gone=client_gone(request),
            budget=service.settings.max_work_seconds,
        )
        prefix = params.prefix
    ranked = sorted(zip(model.vocab.alphabet, probs.tolist(), strict=True), key=lambda cp: -cp[1])
    body = {"prefix": prefix, "distribution": [{"char": c, "prob": p} for c, p in ranked]}
    if report is not None:
        body["constraint"] = constraint_info(report)
    return JSONBytes(body)


@router.post("/loss", response_model=WordLoss | BatchLoss, summary="Score a name (or many)")
async def loss(req: LossRequest, service: ServiceDep, request: Request) -> JSONBytes:
    settings = service.settings
    single = req.word is not None
    words = [req.word] if single else req.words

    def where(index: int) -> Loc:  # the model names a word by its index; the body by its field
        return ("word",) if single else ("words", index)

    raise_problems([
        *over_limit(("words",), "the number of words", len(words), settings.max_words),
        *(problem for i, word in enumerate(words)
          for problem in over_limit(where(i), "the word length", len(word), settings.max_length)),
    ])  # fmt: skip
    model = service.model(req.model)
    service.check_condition(model, req.condition)
    raise_problems(
        over_budget(
            model, words, settings.max_work_seconds, ("word",) if single else ("words",), [req.condition]
        )
    )
    try:
        scores = await service.word_losses(model, words, req.condition, client_gone(request))
    except ParameterError as exc:
        raise ParameterError.of([(where(int(loc[0])), msg) for loc, msg in exc.problems]) from None
    percentiles = model.percentiles([score.loss for score in scores])
    if single:
        return JSONBytes(_word_loss(scores[0], percentiles[0]))
    return JSONBytes(_batch_loss(scores, percentiles))


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Girl or boy name? p(gender | name) by a conditional model",
)
async def classify(req: ClassifyRequest, service: ServiceDep, request: Request) -> JSONBytes:
    """For each word, p(value | word) = prior(value) p(word | value) / sum over values: the model's
    likelihood of the word given each value (as /loss with that condition) and the training prior."""
    settings = service.settings
    raise_problems([
        *over_limit(("words",), "the number of words", len(req.words), settings.max_words),
        *(problem for i, word in enumerate(req.words)
          for problem in over_limit(("words", i), "the word length", len(word), settings.max_length)),
    ])  # fmt: skip
    model = service.classifier(req.model)
    words = req.words
    passes = len(model.prior)  # one scoring pass per value: the price of that many /loss calls
    ((key, values),) = model.conditions.items()
    per_value = [{key: value} for value in values]
    raise_problems(over_budget(model, words, settings.max_work_seconds, ("words",), per_value))
    try:
        answers = await service.runner.run(
            model,
            ModelCall("classify", (words,)),
            words=len(words) * passes,
            gone=client_gone(request),
            budget=settings.max_work_seconds,
        )
    except ParameterError as exc:
        raise ParameterError.of([(("words", int(loc[0])), msg) for loc, msg in exc.problems]) from None
    return JSONBytes({
        "model": model.name,
        "prior": {next(iter(model.conditions)): model.prior},
        "results": answers,
    })  # fmt: skip


def over_budget(
    model: LanguageModel, words: list[str], budget: float, loc: Loc, conditions: list[Condition] | None = None
) -> list[tuple[Loc, str]]:
    """A problem when scoring `words` (once per condition of `conditions`, by default once without)
    would cost more than `budget` seconds of model work: the bound is each family's cost per
    character times the characters, not a count of words."""
    conditions = conditions or [None]
    seconds = sum(model.scoring_seconds(words, c) for c in conditions)
    if seconds <= budget:
        return []
    longest = max(words, key=len)
    each = sum(model.scoring_seconds([longest], c) for c in conditions)
    return [
        (
            loc,
            f"scoring these words on {model.name} would take about {seconds:.2g} s of model work; this "
            f"server allows {budget:g} s a request (NAMEGEN_MAX_WORK_SECONDS): at most "
            f"{int(budget // each)} words of {len(longest)} characters, more of fewer characters",
        )
    ]


def _word_loss(score: WordScore, percentile: float | None) -> dict[str, Any]:
    return {
        "word": score.word,
        "loss": score.loss,
        "percentile": percentile,
        "perplexity": score.perplexity,
        "chars": [{"char": c, "prob": p, "nll": n}
                  for c, p, n in zip(score.targets, score.probs, score.nlls, strict=True)],
    }  # fmt: skip


def _batch_loss(scores: list[WordScore], percentiles: list[float | None]) -> dict[str, Any]:
    nlls = [nll for score in scores for nll in score.nlls]
    mean = sum(nlls) / len(nlls)
    return {
        "results": [_word_loss(score, pct) for score, pct in zip(scores, percentiles, strict=True)],
        "mean_loss": mean,
        "perplexity": math.exp(mean),
        "predictions": len(nlls),
    }
