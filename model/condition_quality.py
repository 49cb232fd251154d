"""How well a gender-conditioned model follows its condition, on the project's own split.

    python -m model.condition_quality --split val    # choose on val
    python -m model.condition_quality --split test   # report once

On the split's names with a clear label (at least 90 % one sex in the SSA counts):
- per-gender NLL (nats per prediction, every character and the end) of the conditional model given
  the right label, beside the unconditional baseline's on the same names;
- classification balanced accuracy: the mean of the female and the male recall, a name called
  female when p(female | name) >= 0.5 (Bayes with the training prior);
and over samples (temperature 1, seeded): of the conditioned samples that are real names (labelled
names of the word list), the share whose SSA majority sex is the one asked for; unconditioned
samples give the baseline (the share of real ones that are female).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.data import read_words, split_words
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.labels import CLEAR_SHARE, LabelTable, cached_gender_table

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 2000
SEED = 2026


@dataclass(frozen=True)
class GenderQuality:
    split: str
    clear_names: dict[str, int]  # per value, names of the split with a clear label
    nll: dict[str, float]  # per value: the conditional model given that value, on those names
    baseline_nll: dict[str, float]  # the unconditional baseline on the same names
    unconditioned_nll: dict[str, float]  # the conditional model without a condition, same names
    recall: dict[str, float]
    balanced_accuracy: float
    sample_match: dict[str, float]  # per value asked: share of real-name samples of that majority
    real_samples: dict[str, int]  # per value asked: samples that are labelled names
    unconditioned_female_share: float  # of real-name samples drawn without a condition


def clear_names(words: list[str], table: LabelTable) -> dict[str, list[str]]:
    """The words whose share of one value is at least CLEAR_SHARE, per value."""
    out: dict[str, list[str]] = {value: [] for value in table.values}
    for word in words:
        shares = table.shares(word)
        if shares is None:
            continue
        for value, share in zip(table.values, shares, strict=True):
            if share >= CLEAR_SHARE:
                out[value].append(word)
    return out


def mean_nll(model: LanguageModel, words: list[str], condition: dict[str, str] | None) -> float:
    """NLL per prediction over all of `words` (each word's characters and its end)."""
    if not words:
        return math.nan
    scores = model.word_losses(words, condition=condition)
    return sum(sum(s.nlls) for s in scores) / sum(len(s.nlls) for s in scores)


def majority(table: LabelTable, word: str) -> str | None:
    """The value with the larger count (None for a tie or an unlabelled word)."""
    shares = table.shares(word)
    if shares is None or max(shares) == 0.5:
        return None
    return table.values[max(range(len(shares)), key=shares.__getitem__)]


def measure(
    model: LanguageModel, baseline: LanguageModel, words: list[str], table: LabelTable, split: str
) -> GenderQuality:
    ((key, values),) = model.conditions.items()
    clear = clear_names(words, table)
    nll, base, uncond, recall = {}, {}, {}, {}
    for value in values:
        names = clear[value]
        nll[value] = mean_nll(model, names, {key: value})
        base[value] = mean_nll(baseline, names, None)
        uncond[value] = mean_nll(model, names, None)
        answers = model.classify(names) if names else []
        recall[value] = sum(a[key][value] >= 0.5 for a in answers) / len(names) if names else math.nan
    match, real = {}, {}
    for value in values:
        drawn = [s.name for s in model.sample(SAMPLES, SamplingParams(), SEED, condition={key: value}).names]
        majorities = [m for name in drawn if (m := majority(table, name)) is not None]
        real[value] = len(majorities)
        match[value] = sum(m == value for m in majorities) / max(1, len(majorities))
    drawn = [s.name for s in model.sample(SAMPLES, SamplingParams(), SEED).names]
    majorities = [m for name in drawn if (m := majority(table, name)) is not None]
    female_share = sum(m == values[0] for m in majorities) / max(1, len(majorities))
    return GenderQuality(
        split=split,
        clear_names={v: len(clear[v]) for v in values},
        nll=nll,
        baseline_nll=base,
        unconditioned_nll=uncond,
        recall=recall,
        balanced_accuracy=sum(recall.values()) / len(recall),
        sample_match=match,
        real_samples=real,
        unconditioned_female_share=female_share,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.condition_quality", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "weights" / "names-gru-gender.safetensors")
    p.add_argument("--baseline", type=Path, default=ROOT / "weights" / "names-gru.safetensors")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "names.txt")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument(
        "--guidance", type=float, help="serve with this condition_guidance instead of the checkpoint's "
        "(to choose it on val)",
    )  # fmt: skip
    args = p.parse_args(argv)
    checkpoint = load_checkpoint(args.model)
    if args.guidance is not None:
        checkpoint.config["condition_guidance"] = args.guidance
    model = LanguageModel(checkpoint, torch.device("cpu"), name=args.model.stem)
    baseline = LanguageModel.from_checkpoint(args.baseline, device="cpu")
    if not model.conditions:
        sys.exit(f"{args.model} is not a conditional model")
    words = read_words(args.data)
    data = model.checkpoint.data
    splits = split_words(words, data["split_seed"], tuple(data["split_fractions"]))
    table, _ = cached_gender_table(words)
    if table.sha256 != data["labels"]["sha256"]:
        sys.exit(f"the label table differs from the one {args.model} was trained with")
    quality = measure(model, baseline, getattr(splits, args.split), table, args.split)
    print(json.dumps({"guidance": model.guidance, **asdict(quality)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
