"""One self-describing `.safetensors` file per trained model; no pickle anywhere.

Tensors: the MLP's parameters plus `known_word_hashes`, the sorted 64-bit hashes
(`model.hashing.word_hashes`) of every word of the word list the model was trained from, so
novelty can be checked without shipping the list.
The safetensors metadata header (str -> str) carries JSON: format and version, model kind and
config, alphabet, metrics, data provenance and the training arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model.atomic import write_atomically
from model.families.mlp import MLP, MLPConfig
from model.hashing import word_hashes
from model.vocab import Vocab

FORMAT_NAME = "namegen-checkpoint"
FORMAT_VERSION = 2  # 2: word hashes by model.hashing (1 used blake2b)
MODEL_KIND = "mlp"
KNOWN_WORDS_KEY = "known_word_hashes"


class CheckpointError(Exception):
    """A checkpoint cannot be loaded; the message says which file and why."""


class CheckpointNotFoundError(CheckpointError):
    pass


class CorruptCheckpointError(CheckpointError):
    """Truncated, not a safetensors file, or inconsistent with its own metadata."""


class ForeignCheckpointError(CheckpointError):
    """A valid safetensors file that is not a namegen checkpoint."""


class UnsupportedVersionError(CheckpointError):
    """Written by a newer namegen whose format this code does not know."""


def hash_words(words: Iterable[str]) -> torch.Tensor:
    """The sorted, distinct hashes of `words`, as stored under `known_word_hashes`."""
    return torch.from_numpy(np.unique(word_hashes(list(words))))


@dataclass
class Checkpoint:
    config: MLPConfig
    vocab: Vocab
    state_dict: dict[str, torch.Tensor]
    known_word_hashes: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)

    def build_model(self, device: torch.device | str = "cpu") -> MLP:
        model = MLP(self.config)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically: a crash or Ctrl-C leaves no half-written file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in checkpoint.state_dict.items()}
    tensors[KNOWN_WORDS_KEY] = checkpoint.known_word_hashes.cpu().contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model": json.dumps({"kind": MODEL_KIND, "config": asdict(checkpoint.config)}),
        "alphabet": checkpoint.vocab.alphabet,
        "metrics": json.dumps(checkpoint.metrics),
        "data": json.dumps(checkpoint.data),
        "train_args": json.dumps(checkpoint.train_args),
    }
    write_atomically(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and validate a checkpoint; every failure is a CheckpointError naming file and cause."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for every bad byte
        raise CorruptCheckpointError(
            f"checkpoint {path} is not a readable safetensors file (truncated or another format): {exc}"
        ) from exc
    if metadata.get("format") != FORMAT_NAME:
        raise ForeignCheckpointError(
            f"checkpoint {path} is a safetensors file but not a namegen checkpoint "
            f"(metadata 'format' is {metadata.get('format')!r}, expected {FORMAT_NAME!r})"
        )
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise CorruptCheckpointError(f"checkpoint {path} has no valid format_version") from None
    if version != FORMAT_VERSION:
        action = "upgrade namegen to load it" if version > FORMAT_VERSION else "retrain it with this namegen"
        raise UnsupportedVersionError(
            f"checkpoint {path} has format version {version}; this namegen reads version "
            f"{FORMAT_VERSION}: {action}"
        )
    try:
        model_info = json.loads(metadata["model"])
        if model_info["kind"] != MODEL_KIND:
            raise ForeignCheckpointError(
                f"checkpoint {path} holds a {model_info['kind']!r} model; this namegen serves {MODEL_KIND!r}"
            )
        checkpoint = Checkpoint(
            config=MLPConfig(**model_info["config"]),
            vocab=Vocab(metadata["alphabet"]),
            state_dict={k: v for k, v in tensors.items() if k != KNOWN_WORDS_KEY},
            known_word_hashes=tensors[KNOWN_WORDS_KEY],
            metrics=json.loads(metadata["metrics"]),
            data=json.loads(metadata["data"]),
            train_args=json.loads(metadata["train_args"]),
        )
        if checkpoint.config.vocab_size != checkpoint.vocab.size:
            raise ValueError("config vocab_size differs from the alphabet's size")
        checkpoint.build_model()  # shapes and names must match the config exactly
    except CheckpointError:
        raise
    except Exception as exc:
        raise CorruptCheckpointError(f"checkpoint {path} is inconsistent: {exc}") from exc
    return checkpoint
