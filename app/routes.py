"""Thin handlers: validate against the loaded model -> call LanguageModel -> shape the response.

Model work here is table lookups: a request costs microseconds to a few milliseconds, so it runs
inline; only work that could take longer (many words to score, or any model without a table) goes
to a worker thread (`app.workers`). The budgets are measured by bench/run.py.
Responses are plain dicts serialised by orjson (`JSONBytes`), skipping FastAPI's re-validation
of what our own code built; `response_model` still documents them, and tests validate real
responses against those models.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from fastapi import APIRouter

from app.deps import ServiceDep
from app.responses import JSONBytes
from app.schemas import (
    BatchLoss,
    Health,
    LossRequest,
    ModelInfo,
    NextCharRequest,
    NextCharResponse,
    SampleRequest,
    SampleResponse,
    WordLoss,
)
from app.validation import field_error, limit_errors, raise_if_errors, text_errors
from model.inference import LanguageModel, WordScore

router = APIRouter(default_response_class=JSONBytes)

INLINE_MAX_NAMES = 2048  # sampled names (1-3 us each) that run inline on a table model
INLINE_MAX_WORDS = 100  # scored words (about 10 us each) that run inline on a table model


@router.get("/health", response_model=Health, summary="200 once the model is loaded, else 503")
async def health(service: ServiceDep) -> JSONBytes:
    return JSONBytes({"status": "ok"})


@router.get("/model", response_model=ModelInfo, summary="What is being served")
async def model_info(service: ServiceDep) -> JSONBytes:
    model = service.model
    return JSONBytes({
        "name": model.name,
        "kind": "mlp",
        "config": vars(model.config),
        "parameters": model.parameter_count,
        "alphabet": model.vocab.alphabet,
        "metrics": model.checkpoint.metrics,
        "data": model.checkpoint.data,
        "device": str(model.device),
    })  # fmt: skip


@router.post("/sample", response_model=SampleResponse, summary="Invent new names")
async def sample(req: SampleRequest, service: ServiceDep) -> JSONBytes:
    model, settings = service.model, service.settings
    errors = [
        *limit_errors(req.n, settings.max_n, ["n"], "n"),
        *limit_errors(req.max_length, settings.max_length, ["max_length"], "max_length"),
        *text_errors(model, req.prefix, ["prefix"]),
    ]
    if req.top_k is not None and req.top_k > model.vocab.size:
        message = f"top_k must be at most the vocabulary size ({model.vocab.size})"
        errors.append(field_error(["top_k"], message, req.top_k))
    raise_if_errors(errors)
    if req.novel or not model.uses_table:
        small = req.n * (2 if req.novel else 1) <= INLINE_MAX_NAMES
        rounds = settings.novel_max_rounds
        names = await service.runner.run(small, lambda: _sample_unbatched(model, req, rounds))
    else:  # concurrent requests share one sampling pass, each still getting its own names
        scored = await service.batcher.sample(
            req.n, req.seed, (req.temperature, req.top_k, req.prefix, req.max_length)
        )
        names = _with_novelty(model, scored)
    return JSONBytes({"model": model.name, "names": names, "complete": len(names) == req.n})


def _with_novelty(model: LanguageModel, scored: list[tuple[str, float]]) -> list[dict[str, Any]]:
    known = model.are_known_names([name for name, _ in scored])
    return [
        {"name": name, "loss": loss, "novel": not is_known}
        for (name, loss), is_known in zip(scored, known, strict=True)
    ]


def _sample_unbatched(model: LanguageModel, req: SampleRequest, max_rounds: int) -> list[dict[str, Any]]:
    """n names with their losses, without batching; with `novel`, resample only the missing
    ones, for at most `max_rounds` rounds."""
    kwargs = {"temperature": req.temperature, "top_k": req.top_k, "prefix": req.prefix,
              "max_length": req.max_length}  # fmt: skip
    if not req.novel:
        return _with_novelty(model, model.sample_scored(req.n, seed=req.seed, **kwargs))
    found: list[dict[str, Any]] = []
    for round_ in range(max_rounds):
        missing = req.n - len(found)
        batch = model.sample_scored(max(2 * missing, 16), seed=_round_seed(req.seed, round_), **kwargs)
        found += [entry for entry in _with_novelty(model, batch) if entry["novel"]][:missing]
        if len(found) == req.n:
            break
    return found


def _round_seed(seed: int | None, round_: int) -> int | None:
    """Round 0 uses the request's seed; later rounds a seed derived from it, so runs repeat."""
    if seed is None or round_ == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}:{round_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@router.post(
    "/next-char",
    response_model=NextCharResponse,
    summary="Next-character distribution",
)
async def next_char(req: NextCharRequest, service: ServiceDep) -> JSONBytes:
    model, settings = service.model, service.settings
    raise_if_errors([
        *limit_errors(len(req.prefix), settings.max_length, ["prefix"], "the prefix length"),
        *text_errors(model, req.prefix, ["prefix"]),
    ])  # fmt: skip
    probs = await service.runner.run(True, lambda: model.next_char_distribution(req.prefix).tolist())
    ranked = sorted(zip(model.vocab.alphabet, probs, strict=True), key=lambda cp: -cp[1])
    return JSONBytes({
        "prefix": model.normalise(req.prefix),
        "distribution": [{"char": c, "prob": p} for c, p in ranked],
    })  # fmt: skip


@router.post("/loss", response_model=WordLoss | BatchLoss, summary="Score a name (or many)")
async def loss(req: LossRequest, service: ServiceDep) -> JSONBytes:
    model, settings = service.model, service.settings
    if req.word is not None:
        raise_if_errors(_word_errors(model, req.word, ["word"], settings.max_length))
        (score,) = await service.runner.run(True, lambda: model.word_losses([req.word]))
        return JSONBytes(_word_loss(score))
    words = req.words or []
    errors = limit_errors(len(words), settings.max_words, ["words"], "the number of words")
    for i, word in enumerate(words):
        errors += _word_errors(model, word, ["words", i], settings.max_length)
    raise_if_errors(errors)
    return JSONBytes(
        await service.runner.run(
            len(words) <= INLINE_MAX_WORDS, lambda: _batch_loss(model.word_losses(words))
        )
    )


def _word_errors(model: LanguageModel, word: str, loc: list[str | int], max_length: int) -> list[dict]:
    return [*limit_errors(len(word), max_length, loc, "the word length"), *text_errors(model, word, loc)]


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
