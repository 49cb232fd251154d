"""One self-describing `.safetensors` file per trained model; no pickle anywhere.

Tensors: the model's parameters plus `known_word_hashes`, the sorted 64-bit hashes
(`model.hashing.word_hashes`) of every word of the word list the model was trained from, so
novelty can be checked without shipping the list.
The safetensors metadata header (str -> str) carries JSON: format and version, model kind and
config, alphabet, metrics, data provenance, the training arguments, optionally the reference
scores (`reference`: the sorted losses of the held-out names, numbers only, from which a served
name's percentile is read; `model.reference` adds them), and a sha256 digest over all of it and
every tensor, so an edited or damaged file is refused instead of served.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model.atomic import write_atomically
from model.hashing import word_hashes
from model.vocab import Vocab

FORMAT_NAME = "namegen-checkpoint"
FORMAT_VERSION = 3  # 3: any family, digest; 2: word hashes by model.hashing; 1: blake2b hashes
KNOWN_WORDS_KEY = "known_word_hashes"
DIGEST_KEY = "digest"
REFERENCE_KEY = "reference"
_JSON_FIELDS = ("model", "metrics", "data", "train_args")


class CheckpointError(Exception):
    """A checkpoint cannot be loaded; the message says which file and why."""


class CheckpointNotFoundError(CheckpointError):
    pass


class CorruptCheckpointError(CheckpointError):
    """Truncated, not a safetensors file, or inconsistent with its own metadata."""


class ForeignCheckpointError(CheckpointError):
    """A valid safetensors file that is not a namegen checkpoint."""


class UnsupportedVersionError(CheckpointError):
    """Written by a namegen whose format this code does not read."""


def known_word_hashes(words: Iterable[str]) -> torch.Tensor:
    """The sorted, distinct hashes of `words`, as stored under `known_word_hashes`."""
    return torch.from_numpy(np.unique(word_hashes(list(words))))


@dataclass
class Checkpoint:
    """A checkpoint's contents. `kind` and `config` are the family's name and its config as plain
    data: `model.families.build_model` validates them through the family and builds the module."""

    kind: str
    config: dict[str, Any]
    vocab: Vocab
    state_dict: dict[str, torch.Tensor]
    known_word_hashes: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)
    # {"split": "test", "losses": [...]}: the held-out names' losses, sorted (empty: none stored)
    reference: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was loaded from, for error messages


def digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) and every metadata entry but itself."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for key in sorted(k for k in metadata if k != DIGEST_KEY):
        h.update(f"{key}\0{metadata[key]}\0".encode())
    return h.hexdigest()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically: a crash or Ctrl-C leaves no half-written file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in checkpoint.state_dict.items()}
    tensors[KNOWN_WORDS_KEY] = checkpoint.known_word_hashes.cpu().contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model": json.dumps({"kind": checkpoint.kind, "config": checkpoint.config}),
        "alphabet": checkpoint.vocab.alphabet,
        "metrics": json.dumps(checkpoint.metrics),
        "data": json.dumps(checkpoint.data),
        "train_args": json.dumps(checkpoint.train_args),
    }
    if checkpoint.reference:  # absent when empty: a checkpoint saved without one is as before
        metadata[REFERENCE_KEY] = json.dumps(checkpoint.reference)
    metadata[DIGEST_KEY] = digest(tensors, metadata)
    write_atomically(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} is not a file (a directory?)")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror}") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for every bad byte
        raise CorruptCheckpointError(
            f"checkpoint {path} is not a readable safetensors file (truncated or another format): {exc}"
        ) from None
    return metadata, tensors


def _check_version(path: Path, metadata: dict[str, str]) -> None:
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


def _check_tensors(state_dict: dict[str, torch.Tensor], hashes: torch.Tensor | None) -> None:
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"tensor {name!r} holds NaN or infinite values")
    if hashes is None:
        raise ValueError(f"tensor {KNOWN_WORDS_KEY!r} is missing")
    if hashes.dtype != torch.int64 or hashes.dim() != 1 or not len(hashes):
        raise ValueError(
            f"{KNOWN_WORDS_KEY!r} must be a non-empty 1-D int64 tensor, got "
            f"{hashes.dtype} of shape {tuple(hashes.shape)}"
        )
    if len(hashes) > 1 and not bool((hashes[1:] > hashes[:-1]).all()):
        raise ValueError(f"{KNOWN_WORDS_KEY!r} must be sorted and distinct")


def _check_reference(reference: dict[str, Any]) -> None:
    if not reference:
        return
    losses = reference.get("losses")
    if not (
        isinstance(losses, list)
        and losses
        and all(isinstance(x, int | float) and math.isfinite(x) for x in losses)
        and all(a <= b for a, b in itertools.pairwise(losses))
    ):
        raise ValueError("metadata 'reference' must hold 'losses', a non-empty sorted list of finite numbers")


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and verify a checkpoint (digest, metadata, finite weights, word hashes); every failure is
    a CheckpointError naming file and cause. `model.families.build_model` checks the config and
    every tensor's name and shape against the family."""
    path = Path(path)
    metadata, tensors = _read(path)
    _check_version(path, metadata)
    if metadata.get(DIGEST_KEY) != digest(tensors, metadata):
        raise CorruptCheckpointError(
            f"checkpoint {path} is inconsistent: its digest does not match its tensors and metadata "
            "(the file was edited or damaged)"
        )
    try:
        info = {key: json.loads(metadata[key]) for key in _JSON_FIELDS}
        info[REFERENCE_KEY] = json.loads(metadata.get(REFERENCE_KEY, "{}"))
        for key, value in info.items():
            if not isinstance(value, dict):
                raise ValueError(f"metadata {key!r} must be a JSON object, got {type(value).__name__}")
        kind, config = info["model"]["kind"], info["model"]["config"]
        if not isinstance(kind, str) or not isinstance(config, dict):
            raise ValueError("metadata 'model' must hold a 'kind' string and a 'config' object")
        _check_reference(info[REFERENCE_KEY])
        vocab = Vocab(metadata["alphabet"])
        state_dict = {k: v for k, v in tensors.items() if k != KNOWN_WORDS_KEY}
        _check_tensors(state_dict, tensors.get(KNOWN_WORDS_KEY))
        checkpoint = Checkpoint(
            kind=kind,
            config=config,
            vocab=vocab,
            state_dict=state_dict,
            known_word_hashes=tensors[KNOWN_WORDS_KEY],
            metrics=info["metrics"],
            data=info["data"],
            train_args=info["train_args"],
            reference=info[REFERENCE_KEY],
            path=path,
        )
    except Exception as exc:
        raise CorruptCheckpointError(f"checkpoint {path} is inconsistent: {exc}") from None
    return checkpoint
