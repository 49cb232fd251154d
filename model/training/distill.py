"""Knowledge distillation from an ensemble of trained checkpoints (`--teachers`, `--distill-weight`).

The student's loss is (1 - A) CE(targets) + A H(q, p): H the cross-entropy from the teachers'
averaged next-character probabilities q to the student's p (KL(q || p) plus q's entropy, which does
not depend on the student, so the gradients are KL's), both averaged over the same non-padding
positions. The teachers run in eval mode without gradients, so their probabilities for a training
row never change: they are computed once for every training row (the same padded rows the batches
index) and each batch reads its rows' probabilities.

A teacher must have been trained on the same word list (sha256) cut into the same split, or it
would have seen the student's val and test names. The student's checkpoint records every teacher's
path, sha256 and training command, so it is reproduced by the teachers' commands and its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.checkpoint import Checkpoint, load_checkpoint
from model.data import IGNORE_TARGET, file_sha256
from model.families import CharModel, build_model
from model.training.examples import Sequences
from model.vocab import Vocab


@dataclass(frozen=True)
class Teacher:
    model: CharModel
    checkpoint: Checkpoint
    sha256: str


def load_teachers(
    paths: list[Path], vocab: Vocab, data: dict[str, Any], device: torch.device
) -> list[Teacher]:
    """The checkpoints at `paths` in eval mode on `device`; ValueError unless each reads `vocab`'s
    alphabet and was trained on the word list and split that `data` (the student's) describes."""
    teachers = []
    for path in paths:
        checkpoint = load_checkpoint(path)
        if checkpoint.vocab.alphabet != vocab.alphabet:
            raise ValueError(
                f"teacher {path} reads the alphabet {checkpoint.vocab.alphabet!r}, "
                f"the student {vocab.alphabet!r}"
            )
        for key in ("sha256", "word_count", "split_seed", "split_fractions"):
            if checkpoint.data.get(key) != data[key]:
                raise ValueError(
                    f"teacher {path} was trained with {key} {checkpoint.data.get(key)!r}, the student "
                    f"with {data[key]!r}: a teacher must be trained on the same word list and split"
                )
        model = build_model(checkpoint, device)
        for p in model.parameters():
            p.requires_grad_(False)
        teachers.append(Teacher(model, checkpoint, file_sha256(path)))
    return teachers


@torch.inference_mode()
def ensemble_probabilities(
    models: list[CharModel], inputs: torch.Tensor, chunk: int = 1 << 16
) -> torch.Tensor:
    """The models' next-character probabilities [N, T, V] for every row of inputs[N, T], averaged
    over the models (each in eval mode), computed `chunk` predictions at a time."""
    rows = max(1, chunk // inputs.shape[1])
    parts = []
    for start in range(0, len(inputs), rows):
        ids = inputs[start : start + rows]
        probs = [F.softmax(m.eval().sequence_logits(ids).float(), dim=-1) for m in models]
        parts.append(torch.stack(probs).mean(0))
    return torch.cat(parts)


def ensemble_loss(models: list[CharModel], examples: Sequences) -> float:
    """Mean NLL (nats per prediction) of the models' averaged probabilities over `examples`."""
    probs = ensemble_probabilities(models, examples.inputs)
    keep = examples.targets != IGNORE_TARGET
    picked = probs[keep].gather(1, examples.targets[keep][:, None])
    return -picked.double().log().mean().item()


def distillation_loss(
    logits: torch.Tensor, targets: torch.Tensor, soft: torch.Tensor, weight: float
) -> torch.Tensor:
    """(1 - weight) CE(logits, targets) + weight H(soft, softmax(logits)), each the mean over the
    positions whose target is not IGNORE_TARGET. logits and soft [B, T, V], targets [B, T]."""
    flat = logits.flatten(0, 1)
    ids = targets.flatten()
    keep = ids != IGNORE_TARGET
    hard = F.cross_entropy(flat, ids, ignore_index=IGNORE_TARGET)
    soft_ce = -(soft.flatten(0, 1)[keep] * F.log_softmax(flat[keep], dim=-1)).sum(-1).mean()
    return (1 - weight) * hard + weight * soft_ce


@dataclass(frozen=True)
class DistilledSequences(Sequences):
    """Whole names with the teachers' averaged probabilities soft[N, T, V] for every position."""

    soft: torch.Tensor
    weight: float

    @classmethod
    def of_teachers(cls, examples: Sequences, teachers: list[Teacher], weight: float) -> DistilledSequences:
        soft = ensemble_probabilities([t.model for t in teachers], examples.inputs)
        return cls(examples.inputs, examples.targets, soft, weight)

    def batch_loss(self, model: CharModel, ix: torch.Tensor) -> torch.Tensor:
        logits = model.sequence_logits(self.inputs[ix])
        return distillation_loss(logits, self.targets[ix], self.soft[ix], self.weight)


def teachers_provenance(teachers: list[Teacher], paths: list[Path], val_loss: float) -> dict[str, Any]:
    """What the student's checkpoint records of its teachers (under train_args['teachers'])."""
    return {
        "models": [
            {
                "path": str(path),
                "sha256": t.sha256,
                "kind": t.checkpoint.kind,
                "config": t.checkpoint.config,
                "command": t.checkpoint.train_args.get("command"),
                "val_loss": t.checkpoint.metrics.get("val_loss"),
                # a distilled teacher's own teachers, so the whole chain can be retrained
                **(
                    {"teachers": t.checkpoint.train_args["teachers"]}
                    if "teachers" in t.checkpoint.train_args
                    else {}
                ),
            }
            for t, path in zip(teachers, paths, strict=True)
        ],
        "ensemble_val_loss": val_loss,
        "soft_targets": "mean of the teachers' softmax probabilities, eval mode",
    }
