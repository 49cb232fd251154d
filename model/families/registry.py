"""The family record and the registry that maps a checkpoint's `model.kind` to it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from model.checkpoint import Checkpoint, CorruptCheckpointError
from model.families.base import CharModel, FamilyConfig
from model.recipe import Recipe


@dataclass(frozen=True)
class Family:
    """One model family: its config class (defaults = the reference preset), module and recipe."""

    kind: str
    config_class: type[FamilyConfig]
    model_class: type[CharModel]
    recipe: Recipe
    summary: str

    def config(self, **values: Any) -> FamilyConfig:
        """A validated config; unknown or missing fields are a ValueError naming them."""
        known = {f.name for f in fields(self.config_class)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{self.kind} config has no field(s) {', '.join(unknown)}")
        try:
            return self.config_class(**values)
        except TypeError as exc:
            raise ValueError(f"{self.kind} config: {exc}") from None

    def build(self, config: FamilyConfig, generator: torch.Generator | None = None) -> CharModel:
        """A freshly initialised module (seeded by `generator`)."""
        return self.model_class(config, generator=generator)


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    _FAMILIES[family.kind] = family
    return family


def get_family(kind: str) -> Family:
    if kind not in _FAMILIES:
        raise ValueError(f"unknown model family {kind!r}; known: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[kind]


def family_kinds() -> list[str]:
    return list(_FAMILIES)


def build_model(checkpoint: Checkpoint, device: torch.device | str = "cpu") -> CharModel:
    """The checkpoint's module in eval mode, its config validated through its family and every
    tensor's name and shape checked; a CorruptCheckpointError naming the file otherwise."""
    try:
        family = get_family(checkpoint.kind)
        config = family.config(**checkpoint.config)
        if config.vocab_size != checkpoint.vocab.size:
            raise ValueError("config vocab_size differs from the alphabet's size")
        model = family.build(config)
        model.load_state_dict(checkpoint.state_dict)  # strict: names and shapes must match
    except (ValueError, RuntimeError, TypeError) as exc:
        one_line = " ".join(str(exc).split())  # torch's load errors span several lines
        raise CorruptCheckpointError(f"checkpoint {checkpoint.path} is inconsistent: {one_line}") from None
    return model.to(device).eval()
