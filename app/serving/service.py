"""What the service loaded at start-up: every model of the weights directory, and the default."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from app.serving.batching import SampleBatcher, ScoringBatcher
from app.serving.processes import ModelCall, ModelProcesses, default_process_count
from app.serving.workers import ModelRunner, usable_cores
from app.settings import Settings, setting_label
from model.checkpoint import CheckpointError
from model.data import REFERENCE_SHA256
from model.device import resolve_device
from model.engine import knobs
from model.engine.constraints.spec import Constraints
from model.engine.language_model import Condition, LanguageModel, NextChar, SampleResult, WordScore
from model.engine.params import ParameterError, SamplingParams

log = logging.getLogger("uvicorn.error")


class StartupError(RuntimeError):
    """The service cannot start; the message says why in one line."""


def checkpoint_paths(weights: Path) -> list[Path]:
    """Every checkpoint to serve: `weights` itself when it is a file, else its *.safetensors."""
    if weights.is_file():
        return [weights]
    if not weights.is_dir():
        raise StartupError(
            f"namegen cannot start: {setting_label('weights')} {weights} is neither a file nor a directory"
        )
    paths = sorted(weights.glob("*.safetensors"), key=lambda p: p.stem)  # names-gru before names-gru-gender
    if not paths:
        raise StartupError(
            f"namegen cannot start: {setting_label('weights')} {weights} holds no .safetensors checkpoint"
        )
    return paths


def load_models(settings: Settings) -> dict[str, LanguageModel]:
    """Load and verify every checkpoint once; the first failure stops start-up naming its file."""
    try:
        device = resolve_device(settings.device)
    except ValueError as exc:
        raise StartupError(f"namegen cannot start: {setting_label('device')}: {exc}") from None
    models = {}
    for path in checkpoint_paths(settings.weights):
        try:
            models[path.stem] = LanguageModel.from_checkpoint(path, device=str(device))
        except (CheckpointError, ValueError) as exc:
            raise StartupError(f"namegen cannot start: {exc}") from None
    return models


def dataset_of(model: LanguageModel) -> str:
    """Which word list a model was trained on: its sha256 (or its file name when none is recorded)."""
    data = model.checkpoint.data
    return str(data.get("sha256") or data.get("source") or "unknown")


def comparable_models(models: dict[str, LanguageModel]) -> list[str]:
    """The models whose val losses may be compared: those trained on the reference word list when
    any is, else the largest group trained on one list (the first loaded, on a tie). Val losses
    on different word lists say nothing about which model is better."""
    groups: dict[str, list[str]] = {}
    for name, model in models.items():
        groups.setdefault(dataset_of(model), []).append(name)
    if REFERENCE_SHA256 in groups:
        return groups[REFERENCE_SHA256]
    return max(groups.values(), key=len)


def choose_default(models: dict[str, LanguageModel], wanted: str | None) -> str:
    """NAMEGEN_DEFAULT_MODEL when set (it must be loaded), else the model with the lowest val loss
    among the comparable ones (`comparable_models`), with a warning when the word lists differ."""
    if wanted is not None:
        if wanted not in models:
            raise StartupError(
                f"namegen cannot start: {setting_label('default_model')} {wanted!r} is not loaded "
                f"(loaded: {', '.join(models)})"
            )
        return wanted

    def val_loss(name: str) -> float:
        value = models[name].checkpoint.metrics.get("val_loss")
        return value if isinstance(value, int | float) and math.isfinite(value) else math.inf

    candidates = comparable_models(models)
    default = min(candidates, key=val_loss)
    others = [name for name in models if name not in candidates]
    if others:
        sources = ", ".join(
            f"{name}: {describe_data(models[name].checkpoint.data)['source']} "
            f"(sha256 {dataset_of(models[name])[:12]})"
            for name in models
        )
        log.warning(
            "checkpoints trained on different word lists (%s): the default, %s, is the best on val "
            "among %s; %s not compared (NAMEGEN_DEFAULT_MODEL chooses one)",
            sources,
            default,
            ", ".join(candidates),
            ", ".join(others),
        )
    return default


def describe_data(data: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's data provenance for people: the word list's file name, never a local path."""
    source = data.get("source")
    return {**data, "source": PurePath(source).name} if isinstance(source, str) else data


@dataclass(frozen=True)
class Service:
    """The loaded models with the settings they were loaded under, and where their work runs."""

    settings: Settings
    models: dict[str, LanguageModel]
    default_name: str
    runner: ModelRunner
    batcher: SampleBatcher
    scoring_batcher: ScoringBatcher

    @classmethod
    def start(cls, settings: Settings) -> Service:
        # One BLAS/torch thread per model worker: more only fight the workers for the same cores
        # (measured: 100 GRU names took 38-50 ms instead of 8-11 ms with numpy's default threads).
        torch.set_num_threads(1)
        threadpool_limits(1)
        models = load_models(settings)
        for name, model in models.items():  # the batch-invariance self-test (model.engine.invariance)
            if model.check_batching() == "exact":
                how = f"rows padded to at least {model.min_rows}" if model.min_rows else "a table"
                log.info("model %s: batching exact (%s)", name, how)
            else:
                log.warning(
                    "model %s: batching off: no row minimum gives batch-invariant steps on this "
                    "machine's BLAS, so each request is computed by itself", name
                )  # fmt: skip
        default = choose_default(models, settings.default_model)  # may stop start-up: before any process
        threads = settings.workers or usable_cores()
        count = settings.processes if settings.processes is not None else default_process_count(threads)
        processes = ModelProcesses.start(count, models, settings.max_queue)
        runner = ModelRunner(threads, settings.max_queue, processes)
        return cls(settings, models, default, runner, SampleBatcher(runner), ScoringBatcher(runner))

    def close(self) -> None:
        """Stop the model processes, if any (their jobs have ended: the server drained first)."""
        if self.runner.processes is not None:
            self.runner.processes.close()

    @property
    def default(self) -> LanguageModel:
        return self.models[self.default_name]

    def model(self, name: str | None) -> LanguageModel:
        """The model a request names (the default when none), or a ParameterError listing them."""
        if name is None:
            return self.default
        if name not in self.models:
            raise ParameterError("model", f"unknown model {name!r}; available: {', '.join(self.models)}")
        return self.models[name]

    def check_condition(self, model: LanguageModel, condition: Condition) -> None:
        """A ParameterError at "condition" when `model` cannot take `condition`: for a model that
        takes none, naming the loaded models that do; else the key or value it does not know."""
        if condition and not model.conditions:
            keys = ", ".join(condition)
            takers = [name for name, m in self.models.items() if set(condition) <= set(m.conditions)]
            which = (
                f"models that take {keys}: {', '.join(takers)}" if takers else f"no loaded model takes {keys}"
            )
            raise ParameterError("condition", f"model {model.name!r} takes no condition; {which}")
        model.condition_id(condition)

    def classifier(self, name: str | None) -> LanguageModel:
        """The conditional model a /classify request names (the default when none and it is
        conditional), or a ParameterError at "model" naming the models that classify."""
        model = self.model(name)
        if not model.conditions:
            takers = [n for n, m in self.models.items() if m.conditions]
            which = f"models that classify: {', '.join(takers)}" if takers else "no loaded model classifies"
            raise ParameterError(
                "model", f"model {model.name!r} takes no condition, so it cannot classify; {which}"
            )
        return model

    async def sample(
        self,
        model: LanguageModel,
        n: int,
        params: SamplingParams,
        seed: int | None,
        *,
        novel: bool,
        constraints: Constraints | None = None,
        gone: threading.Event | None = None,
        condition: Condition = None,
    ) -> SampleResult:
        """`n` names from `model`: concurrent plain requests to a model whose batching is "exact" (a
        table, or a forward pass that passed its start-up self-test, within the cost bound) share one
        sampling pass (`batching`); the rest (novel, distinct, exclude, min_distance: resampled;
        conditioned; a model whose batching is "off") runs through the runner, priced by the most
        names the model will draw for it (for constraints: the model's draw budget, so always on a
        worker, compiling the constraints included: a malformed or empty language raises its
        ParameterError there). `gone` is set once the client hangs up: its work then does not
        start, or stops at its next step; every request's work is bounded by NAMEGEN_MAX_WORK_SECONDS."""
        budget = self.settings.max_work_seconds
        params = params.checked(model.vocab)
        self.check_condition(model, condition)
        if constraints is not None and not constraints.empty:
            rounds = self.settings.novel_max_rounds
            return await self.runner.run(
                model,
                ModelCall(
                    "sample",
                    (n, params, seed),
                    dict(novel=novel, max_rounds=rounds, constraints=constraints, condition=condition),
                ),
                names=model.constraint_budget,
                gone=gone,
                budget=budget,
            )
        resampled = novel or params.filters_names
        shared = model.batching == "exact" and (
            model.rows_independent or model.plain_sample_seconds(n, params) <= budget
        )  # a forward pass shares only requests its cost bound can never stop (their bytes stay theirs)
        if resampled or condition or not shared:
            rounds = self.settings.novel_max_rounds
            return await self.runner.run(
                model,
                ModelCall(
                    "sample", (n, params, seed), dict(novel=novel, max_rounds=rounds, condition=condition)
                ),
                names=model.most_names_drawn(n, novel=resampled, max_rounds=rounds),
                gone=gone,
                budget=budget,
            )
        return SampleResult(await self.batcher.sample(model, n, seed, params, gone=gone), complete=True)

    def shares_scoring(self, model: LanguageModel) -> bool:
        """Whether concurrent scoring requests to `model` share passes: a forward pass whose
        batching is "exact" (a table's lookups are cheaper than any batching)."""
        return model.batching == "exact" and not model.rows_independent

    async def word_losses(
        self,
        model: LanguageModel,
        words: list[str],
        condition: Condition = None,
        gone: threading.Event | None = None,
    ) -> list[WordScore]:
        """Each word's scores: concurrent short requests (at most `knobs.LOSS_BATCH_MAX_WORDS`
        words) share one scoring pass (`shares_scoring`); the rest run by themselves, a long list
        in parts side by side in the model processes (`ModelRunner.parts`). The caller has checked
        the cost bound (every request fits it, so each part does)."""
        if self.shares_scoring(model) and len(words) <= knobs.LOSS_BATCH_MAX_WORDS:
            return await self.scoring_batcher.word_losses(model, words, condition, gone)
        calls = [
            (ModelCall("word_losses", (words[start:end], condition), {"first": start}), end - start)
            for start, end in self.runner.parts(model, len(words))
        ]
        answers = await self.runner.run_parts(model, calls, gone, self.settings.max_work_seconds)
        return [score for answer in answers for score in answer]

    async def next_char(
        self,
        model: LanguageModel,
        prefix: str,
        condition: Condition = None,
        gone: threading.Event | None = None,
    ) -> NextChar:
        """The distribution after `prefix`: concurrent requests whose prefix must be read through
        the network share one scoring pass (`shares_scoring`); the rest (a cached start state, a
        table) are answered at once, by themselves."""
        if self.shares_scoring(model) and model.uncached_prefixes([prefix], condition):
            return await self.scoring_batcher.next_char(model, prefix, condition, gone)
        return await self.runner.run(
            model,
            ModelCall("next_char", (prefix, condition)),
            names=1,
            gone=gone,
            budget=self.settings.max_work_seconds,
        )

    def describe(self, model: LanguageModel) -> dict:
        info = model.describe()
        return {**info, "data": describe_data(info["data"]), "default": model.name == self.default_name}
