"""The reference a name's percentile is read from: the losses of the checkpoint's held-out names.

A served checkpoint does not carry its word list, so `percentile` (the share of real held-out
names the model finds less likely) needs the held-out names' losses stored beside the weights:
numbers only, sorted, in the checkpoint's `reference` metadata. `model.train` stores them; for a
checkpoint trained before that, this command scores its own test split (the split recorded in
its `data`, from the word list whose sha256 it recorded, cleaned as the trainer's --lowercase and
--alphabet did) and re-saves it, weights unchanged:

    python -m model.reference weights/*.safetensors --data ../shared/data/names.txt
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from model.data import clean_words, expand_alphabet, file_sha256, read_words, split_words
from model.engine.language_model import LanguageModel

REFERENCE_SPLIT = "test"  # never seen in training nor used to pick the best step (val is)
DECIMALS = 4  # a loss to 1e-4 nats moves no percentile by a visible amount


def reference_of(checkpoint: Checkpoint, words: list[str]) -> dict[str, Any]:
    """The `reference` of `checkpoint` trained on `words`: its held-out split's sorted losses."""
    data = checkpoint.data
    splits = split_words(words, data["split_seed"], tuple(data["split_fractions"]))
    held_out = getattr(splits, REFERENCE_SPLIT)
    model = LanguageModel(checkpoint, torch.device("cpu"))
    losses = sorted(round(score.loss, DECIMALS) for score in model.word_losses(held_out))
    return {"split": REFERENCE_SPLIT, "words": len(losses), "losses": losses}


def add_reference(path: Path, words_path: Path) -> Checkpoint:
    """Re-save the checkpoint at `path` with its reference; the tensors stay bit-identical."""
    checkpoint = load_checkpoint(path)
    recorded = checkpoint.data.get("sha256")
    if recorded is not None and recorded != file_sha256(words_path):
        raise ValueError(f"{words_path} is not the word list {path} was trained on (sha256 differs)")
    data = checkpoint.data  # the trainer's --lowercase / --alphabet, applied again
    alphabet = expand_alphabet(data["alphabet"]) if "alphabet" in data else None
    words = clean_words(
        read_words(words_path), lowercase=bool(data.get("lowercase")), alphabet=alphabet, drop_others=True
    ).words
    updated = replace(checkpoint, reference=reference_of(load_checkpoint(path), words))
    save_checkpoint(path, updated)
    saved = load_checkpoint(path)
    for name, tensor in checkpoint.state_dict.items():
        if not torch.equal(saved.state_dict[name], tensor):
            raise RuntimeError(f"re-saving {path} changed tensor {name!r}")
    return saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m model.reference",
        description="Store in each checkpoint the sorted losses of its held-out (test) names, from "
        "which the service reads each name's percentile. The weights stay bit-identical.",
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints to update in place")
    parser.add_argument(
        "--data", type=Path, required=True, help="the word list they were trained on (sha256 checked)"
    )
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        try:
            saved = add_reference(path, args.data)
        except (CheckpointError, ValueError, KeyError) as exc:
            sys.exit(f"{path}: {exc}")
        losses = saved.reference["losses"]
        print(f"{path}: {len(losses)} {REFERENCE_SPLIT} names, median loss {losses[len(losses) // 2]:.4f}")


if __name__ == "__main__":
    main()
