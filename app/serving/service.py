"""What the service loaded at start-up: every model of the weights directory, and the default."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from app.serving.batching import SampleBatcher
from app.serving.workers import ModelRunner
from app.settings import Settings
from model.checkpoint import CheckpointError
from model.device import resolve_device
from model.engine.language_model import LanguageModel, SampleResult
from model.engine.params import ParameterError, SamplingParams


class StartupError(RuntimeError):
    """The service cannot start; the message says why in one line."""


def checkpoint_paths(weights: Path) -> list[Path]:
    """Every checkpoint to serve: `weights` itself when it is a file, else its *.safetensors."""
    if weights.is_file():
        return [weights]
    if not weights.is_dir():
        raise StartupError(
            f"namegen cannot start: NAMEGEN_WEIGHTS {weights} is neither a file nor a directory"
        )
    paths = sorted(weights.glob("*.safetensors"))
    if not paths:
        raise StartupError(
            f"namegen cannot start: NAMEGEN_WEIGHTS {weights} holds no .safetensors checkpoint"
        )
    return paths


def load_models(settings: Settings) -> dict[str, LanguageModel]:
    """Load and verify every checkpoint once; the first failure stops start-up naming its file."""
    try:
        device = resolve_device(settings.device)
    except ValueError as exc:
        raise StartupError(f"namegen cannot start: NAMEGEN_DEVICE: {exc}") from None
    models = {}
    for path in checkpoint_paths(settings.weights):
        try:
            models[path.stem] = LanguageModel.from_checkpoint(path, device=str(device))
        except (CheckpointError, ValueError) as exc:
            raise StartupError(f"namegen cannot start: {exc}") from None
    return models


def choose_default(models: dict[str, LanguageModel], wanted: str | None) -> str:
    """NAMEGEN_DEFAULT_MODEL when set (it must be loaded), else the model with the lowest val loss."""
    if wanted is not None:
        if wanted not in models:
            raise StartupError(
                f"namegen cannot start: NAMEGEN_DEFAULT_MODEL {wanted!r} is not loaded "
                f"(loaded: {', '.join(models)})"
            )
        return wanted

    def val_loss(name: str) -> float:
        value = models[name].checkpoint.metrics.get("val_loss")
        return value if isinstance(value, int | float) and math.isfinite(value) else math.inf

    return min(models, key=val_loss)


@dataclass(frozen=True)
class Service:
    """The loaded models with the settings they were loaded under, and where their work runs."""

    settings: Settings
    models: dict[str, LanguageModel]
    default_name: str
    runner: ModelRunner
    batcher: SampleBatcher

    @classmethod
    def start(cls, settings: Settings) -> Service:
        # One BLAS/torch thread per model worker: more only fight the workers for the same cores
        # (measured: 100 GRU names took 38-50 ms instead of 8-11 ms with numpy's default threads).
        torch.set_num_threads(1)
        threadpool_limits(1)
        models = load_models(settings)
        runner = ModelRunner(settings.workers, settings.max_queue)
        return cls(
            settings, models, choose_default(models, settings.default_model), runner, SampleBatcher(runner)
        )

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

    async def sample(
        self, model: LanguageModel, n: int, params: SamplingParams, seed: int | None, *, novel: bool
    ) -> SampleResult:
        """`n` names from `model`: concurrent plain requests to a model whose rows are independent
        share one sampling pass (`batching`); the rest runs through the runner, priced by the
        most names the model will draw for it."""
        params = params.checked(model.vocab)
        if novel or not model.rows_independent:
            rounds = self.settings.novel_max_rounds
            return await self.runner.run(
                model,
                lambda: model.sample(n, params, seed, novel=novel, max_rounds=rounds),
                names=model.most_names_drawn(n, novel=novel, max_rounds=rounds),
            )
        return SampleResult(await self.batcher.sample(model, n, seed, params), complete=True)

    def describe(self, model: LanguageModel) -> dict:
        return {**model.describe(), "default": model.name == self.default_name}
