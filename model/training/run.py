"""One training run from a word list to a checkpoint: split, examples, loop, metrics, provenance.

The test split is evaluated once, at the end, after every choice (including which weights to
keep) was made on val. With teachers (`model.training.distill`) the training names carry the
teachers' averaged probabilities and the checkpoint records the teachers.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import Checkpoint, known_word_hashes
from model.data import Splits, file_sha256, split_words
from model.families import CharModel, Family, FamilyConfig, count_parameters
from model.labels import LabelTable
from model.recipe import Recipe
from model.training.distill import DistilledSequences, ensemble_loss, load_teachers, teachers_provenance
from model.training.examples import Examples, LabelledSequences, Sequences, Windows, evaluate
from model.training.loop import History, train_loop
from model.vocab import Vocab


@dataclass(frozen=True)
class WordSource:
    """The word list a run trains on, and where it came from."""

    words: list[str]
    path: Path
    source: str  # the path or URL as the user gave it
    cleaning: dict[str, Any] = field(default_factory=dict)  # --lowercase / --alphabet, when used


@dataclass
class TrainedModel:
    model: CharModel
    checkpoint: Checkpoint
    history: History


def split_examples(
    model: CharModel, recipe: Recipe, splits: Splits, vocab: Vocab, device: torch.device
) -> dict[str, Examples]:
    """Each split as the recipe feeds the model: windows or whole names."""
    if recipe.examples == "windows":
        return {
            name: Windows.of(getattr(splits, name), vocab, model.window, device)
            for name in ("train", "val", "test")
        }
    return {name: Sequences.of(getattr(splits, name), vocab, device) for name in ("train", "val", "test")}


def _fit_counts(model: CharModel, train: Sequences) -> History:
    """A counted model (the bigram): one pass over the training names, no optimiser."""
    started = time.perf_counter()
    ids = torch.cat([train.inputs[:, :1], train.targets.clamp(min=0)], dim=1)
    model.fit_counts(ids, train.targets >= 0)  # type: ignore[attr-defined]
    return History(torch.empty(0), wall_seconds=time.perf_counter() - started)


def label_examples(
    model: CharModel,
    labels: LabelTable | None,
    words: list[str],
    every_word: list[str],
    vocab: Vocab,
    device: torch.device,
) -> tuple[LabelledSequences, dict[str, Any]]:
    """The training names (`words`) with their label shares, and the provenance the checkpoint
    records: package, version, sha256 of the table, coverage of the whole list, the training prior."""
    conditions = model.conditions
    if labels is None or {labels.key: labels.values} != conditions:
        have = None if labels is None else {labels.key: labels.values}
        raise ValueError(f"the model reads conditions {conditions}; the labels given are {have}")
    shares = torch.zeros((len(words), len(labels.values)), dtype=torch.float32)
    for row, word in enumerate(words):
        share = labels.shares(word)
        if share is not None:
            shares[row] = torch.tensor(share)
    labelled = shares.sum(1) > 0
    prior = shares[labelled].double().mean(0).tolist()
    drop = model.config.condition_dropout  # type: ignore[attr-defined]
    provenance = {
        **labels.provenance(every_word),
        "train_labelled": int(labelled.sum()),
        "prior": dict(zip(labels.values, prior, strict=True)),
        "prior_meaning": "each value's mean share over the labelled training names",
        "labels": "soft: each training row draws its label from the name's shares; "
        f"{drop:g} of the rows and every unlabelled name read no label",
    }
    return LabelledSequences.labelled(words, vocab, shares, drop, device), provenance


def train_model(
    family: Family,
    config_values: dict[str, Any],
    recipe: Recipe,
    data: WordSource,
    device: torch.device,
    train_args: dict[str, Any],
    progress: bool = True,
    labels: LabelTable | None = None,
    teachers: list[Path] | None = None,
) -> TrainedModel:
    """Train a `family` model on `data` by `recipe`; with `teachers` (and `recipe.distill_weight`)
    the loss also follows the teachers' averaged probabilities."""
    if bool(teachers) != (recipe.distill_weight > 0):
        raise ValueError("teachers and a distill_weight above 0 go together")
    vocab = Vocab.from_words(data.words)
    splits = split_words(data.words, recipe.split_seed, recipe.split)
    data_info = {
        "source": data.source,
        "sha256": file_sha256(data.path),
        "word_count": len(data.words),
        "split_seed": recipe.split_seed,
        "split_fractions": list(recipe.split),
        "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        **data.cleaning,
    }
    config: FamilyConfig = family.config(vocab_size=vocab.size, **config_values)
    torch.manual_seed(recipe.seed)
    model = family.build(config, generator=torch.Generator().manual_seed(recipe.seed)).to(device)
    examples = split_examples(model, recipe, splits, vocab, device)
    label_data: dict[str, Any] = {}
    if model.conditions:
        if recipe.examples != "sequences":
            raise ValueError("a conditional model trains on whole names (sequences)")
        examples["train"], label_data = label_examples(model, labels, splits.train, data.words, vocab, device)
    print(
        f"{family.kind}: {len(data.words)} words ({len(splits.train)}/{len(splits.val)}/{len(splits.test)}), "
        f"alphabet {vocab.size}, {count_parameters(model)} parameters, device {device}",
        file=sys.stderr,
    )
    if teachers:
        train, val = examples["train"], examples["val"]
        if not (isinstance(train, Sequences) and isinstance(val, Sequences)) or model.conditions:
            raise ValueError("distillation trains an unconditional model on whole names (sequences)")
        loaded = load_teachers(teachers, vocab, data_info, device)
        val_loss = ensemble_loss([t.model for t in loaded], val)
        examples["train"] = DistilledSequences.of_teachers(train, loaded, recipe.distill_weight)
        train_args = {**train_args, "teachers": teachers_provenance(loaded, teachers, val_loss)}
        print(f"{len(loaded)} teachers: ensemble val {val_loss:.4f}", file=sys.stderr)
    if recipe.examples == "counts":
        history = _fit_counts(model, examples["train"])
    else:
        batches = torch.Generator(device=device).manual_seed(recipe.seed)
        history = train_loop(
            model, examples["train"], recipe, batches, examples["val"], progress, family.kind
        )
    model.eval()
    steps = recipe.steps if recipe.examples != "counts" else 0
    metrics = {
        "train_loss": evaluate(model, examples["train"]),
        "val_loss": evaluate(model, examples["val"]),
        "test_loss": evaluate(model, examples["test"]),
        "steps": steps,
        "best_step": history.best_step,
        "wall_seconds": round(history.wall_seconds, 2),
        "steps_per_second": round(steps / history.wall_seconds, 1) if steps else None,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    checkpoint = Checkpoint(
        kind=family.kind,
        config=asdict(config),
        vocab=vocab,
        state_dict=model.state_dict(),
        known_word_hashes=known_word_hashes(data.words),
        metrics=metrics,
        data={**data_info, **({"labels": label_data} if label_data else {})},
        train_args=train_args,
    )
    return TrainedModel(model, checkpoint, history)
