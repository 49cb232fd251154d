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
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from app.api.errors import JSONBytes, limit_errors, raise_if_errors
from app.api.schemas import (
    BatchLoss,
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
)
from app.api.text import clean
from app.http.metrics import count_names
from app.serving.service import Service
from model.engine.language_model import SampleResult, WordScore
from model.engine.params import ParameterError, SamplingParams


async def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        raise HTTPException(status_code=503, detail="the model is not loaded yet")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]  # what handlers declare: `service: ServiceDep`

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


@router.post("/sample", response_model=SampleResponse, summary="Invent new names")
async def sample(req: SampleRequest, service: ServiceDep) -> JSONBytes:
    settings = service.settings
    raise_if_errors([
        *limit_errors(req.n, settings.max_n, ["n"], "n"),
        *limit_errors(req.max_length, settings.max_length, ["max_length"], "max_length"),
    ])  # fmt: skip
    model = service.model(req.model)
    prefix = clean(model, req.prefix, "prefix")
    params = SamplingParams(req.temperature, req.top_k, req.top_p, prefix, req.max_length).checked(
        model.vocab
    )
    if req.novel or not model.rows_independent:
        rounds = settings.novel_max_rounds if req.novel else 1
        result = await service.runner.run(
            model,
            lambda: model.sample(req.n, params, req.seed, novel=req.novel, max_rounds=rounds),
            # the most a novel request can draw: each round draws up to 2 names per missing one
            names=max(2 * req.n, 16) * rounds if req.novel else req.n,
        )
    else:  # concurrent requests share one sampling pass, each still getting its own names
        result = SampleResult(await service.batcher.sample(model, req.n, req.seed, params), complete=True)
    count_names(model.name, len(result.names))
    return JSONBytes({
        "model": model.name,
        "names": result.names,  # Sample dataclasses: orjson writes them natively (asdict: ~4.5 us each)
        "complete": result.complete,
        "reason": result.reason,
    })  # fmt: skip


@router.post("/next-char", response_model=NextCharResponse, summary="Next-character distribution")
async def next_char(req: NextCharRequest, service: ServiceDep) -> JSONBytes:
    raise_if_errors(
        limit_errors(len(req.prefix), service.settings.max_length, ["prefix"], "the prefix length")
    )
    model = service.model(req.model)
    prefix = clean(model, req.prefix, "prefix")
    probs = await service.runner.run(model, lambda: model.next_char_distribution(prefix).tolist(), names=1)
    ranked = sorted(zip(model.vocab.alphabet, probs, strict=True), key=lambda cp: -cp[1])
    return JSONBytes({
        "prefix": model.normalise(prefix),
        "distribution": [{"char": c, "prob": p} for c, p in ranked],
    })  # fmt: skip


@router.post("/loss", response_model=WordLoss | BatchLoss, summary="Score a name (or many)")
async def loss(req: LossRequest, service: ServiceDep) -> JSONBytes:
    settings = service.settings
    single = req.word is not None
    words = [req.word] if single else list(req.words)
    loc = "word" if single else "words"
    errors = limit_errors(len(words), settings.max_words, ["words"], "the number of words")
    for i, word in enumerate(words):
        errors += limit_errors(
            len(word), settings.max_length, [loc] if single else [loc, i], "the word length"
        )
    raise_if_errors(errors)
    model = service.model(req.model)
    problems = []
    for i, word in enumerate(words):
        try:
            words[i] = clean(model, word, loc if single else (loc, i))
        except ParameterError as exc:
            problems += exc.problems
    if problems:
        raise ParameterError.of(problems)
    scores = await service.runner.run(model, lambda: model.word_losses(words, loc), words=len(words))
    return JSONBytes(_word_loss(scores[0]) if single else _batch_loss(scores))


def _word_loss(score: WordScore) -> dict[str, Any]:
    return {
        "word": score.word,
        "loss": score.loss,
        "perplexity": score.perplexity,
        "chars": [{"char": c, "prob": p, "nll": n}
                  for c, p, n in zip(score.targets, score.probs, score.nlls, strict=True)],
    }  # fmt: skip


def _batch_loss(scores: list[WordScore]) -> dict[str, Any]:
    nlls = [nll for score in scores for nll in score.nlls]
    mean = sum(nlls) / len(nlls)
    return {
        "results": [_word_loss(score) for score in scores],
        "mean_loss": mean,
        "perplexity": math.exp(mean),
        "predictions": len(nlls),
    }
