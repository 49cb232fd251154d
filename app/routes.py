"""Thin handlers: validate against the loaded model -> call LanguageModel -> shape the response.

Handlers are plain `def`, so FastAPI runs the model work in its thread pool, off the event loop.
"""

from __future__ import annotations

import hashlib
import math

from fastapi import APIRouter, Depends

from app.deps import ModelDep, SettingsDep
from app.errors import require_json
from app.schemas import (
    BatchLoss,
    CharProb,
    CharScore,
    Health,
    LossRequest,
    ModelConfig,
    ModelInfo,
    NextCharRequest,
    NextCharResponse,
    SampledName,
    SampleRequest,
    SampleResponse,
    WordLoss,
)
from app.validation import field_error, limit_errors, raise_if_errors, text_errors
from model.inference import LanguageModel, WordScore

router = APIRouter()


@router.get("/health", response_model=Health, summary="200 once the model is loaded, else 503")
def health(model: ModelDep) -> Health:
    return Health(status="ok")


@router.get("/model", response_model=ModelInfo, summary="What is being served")
def model_info(model: ModelDep) -> ModelInfo:
    ckpt = model.checkpoint
    return ModelInfo(
        name=model.name,
        kind="mlp",
        config=ModelConfig(**vars(model.config)),
        parameters=model.parameter_count,
        alphabet=model.vocab.alphabet,
        metrics=ckpt.metrics,
        data=ckpt.data,
        device=str(model.device),
    )


@router.post(
    "/sample", dependencies=[Depends(require_json)], response_model=SampleResponse, summary="Invent new names"
)
def sample(req: SampleRequest, model: ModelDep, settings: SettingsDep) -> SampleResponse:
    errors = [
        *limit_errors(req.n, settings.max_n, ["n"], "n"),
        *limit_errors(req.max_length, settings.max_length, ["max_length"], "max_length"),
        *text_errors(model, req.prefix, ["prefix"]),
    ]
    if req.top_k is not None and req.top_k > model.vocab.size:
        errors.append(
            field_error(
                ["top_k"], f"top_k must be at most the vocabulary size ({model.vocab.size})", req.top_k
            )
        )
    raise_if_errors(errors)
    names = _sample_names(model, req, settings.novel_max_rounds)
    scores = model.word_losses(names) if names else []
    return SampleResponse(
        model=model.name,
        names=[SampledName(name=s.word, loss=s.loss, novel=not model.is_known_word(s.word)) for s in scores],
        complete=len(names) == req.n,
    )


def _sample_names(model: LanguageModel, req: SampleRequest, max_rounds: int) -> list[str]:
    """n names; with `novel`, resample only the missing ones, for at most `max_rounds` rounds."""
    kwargs = {
        "temperature": req.temperature,
        "top_k": req.top_k,
        "prefix": req.prefix,
        "max_length": req.max_length,
    }
    if not req.novel:
        return model.sample(req.n, seed=req.seed, **kwargs)
    found: list[str] = []
    for round_ in range(max_rounds):
        missing = req.n - len(found)
        batch = model.sample(max(2 * missing, 16), seed=_round_seed(req.seed, round_), **kwargs)
        found += [name for name in batch if not model.is_known_word(name)][:missing]
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
    dependencies=[Depends(require_json)],
    response_model=NextCharResponse,
    summary="Next-character distribution",
)
def next_char(req: NextCharRequest, model: ModelDep, settings: SettingsDep) -> NextCharResponse:
    raise_if_errors(
        [
            *limit_errors(len(req.prefix), settings.max_length, ["prefix"], "the prefix length"),
            *text_errors(model, req.prefix, ["prefix"]),
        ]
    )
    probs = model.next_char_distribution(req.prefix).tolist()
    ranked = sorted(zip(model.vocab.alphabet, probs, strict=True), key=lambda cp: -cp[1])
    return NextCharResponse(
        prefix=model.normalise(req.prefix),
        distribution=[CharProb(char=c, prob=p) for c, p in ranked],
    )


@router.post(
    "/loss",
    dependencies=[Depends(require_json)],
    response_model=WordLoss | BatchLoss,
    summary="Score a name (or many)",
)
def loss(req: LossRequest, model: ModelDep, settings: SettingsDep) -> WordLoss | BatchLoss:
    if req.word is not None:
        raise_if_errors(_word_errors(model, req.word, ["word"], settings.max_length))
        return _word_loss(model.word_losses([req.word])[0])
    words = req.words or []
    errors = limit_errors(len(words), settings.max_words, ["words"], "the number of words")
    for i, word in enumerate(words):
        errors += _word_errors(model, word, ["words", i], settings.max_length)
    raise_if_errors(errors)
    results = [_word_loss(score) for score in model.word_losses(words)]
    predictions = sum(len(r.chars) for r in results)
    mean = sum(c.nll for r in results for c in r.chars) / predictions
    return BatchLoss(results=results, mean_loss=mean, perplexity=math.exp(mean), predictions=predictions)


def _word_errors(model: LanguageModel, word: str, loc: list[str | int], max_length: int) -> list[dict]:
    return [*limit_errors(len(word), max_length, loc, "the word length"), *text_errors(model, word, loc)]


def _word_loss(score: WordScore) -> WordLoss:
    return WordLoss(
        word=score.word,
        loss=score.loss,
        perplexity=score.perplexity,
        chars=[
            CharScore(char=c, prob=p, nll=n)
            for c, p, n in zip(score.targets, score.probs, score.nlls, strict=True)
        ],
    )
