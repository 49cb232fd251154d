"""Train the MLP on a word list and write one checkpoint plus a loss-curve PNG beside it.

    python -m model.train --data ../shared/data/names.txt --out weights/names-mlp.safetensors

Without --data the reference list is downloaded (sha256-verified) into a git-ignored cache.
Defaults are the reference configuration: block 3, embedding 10, hidden 300, batch 128,
200k steps, lr 0.1 then 0.01 from the halfway step. The test split is evaluated once, at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.checkpoint import Checkpoint, hash_words, save_checkpoint
from model.data import REFERENCE_URL, build_windows, download_word_list, file_sha256, read_words, split_words
from model.device import DEVICE_CHOICES, resolve_device
from model.families.base import count_parameters
from model.families.mlp import INIT_SCHEMES_HELP, MLP, MLPConfig
from model.plots import plot_loss_curve
from model.vocab import Vocab


@dataclass(frozen=True)
class Schedule:
    """Minibatch SGD: `lr` until `decay_step`, then `lr_after`."""

    steps: int = 200_000
    batch_size: int = 128
    lr: float = 0.1
    lr_after: float = 0.01
    decay_step: int | None = None  # None: halfway

    def lr_at(self, step: int) -> float:
        decay = self.steps // 2 if self.decay_step is None else self.decay_step
        return self.lr if step < decay else self.lr_after


@dataclass
class History:
    step_losses: torch.Tensor  # minibatch loss at every step
    val_points: list[tuple[int, float]] = field(default_factory=list)
    wall_seconds: float = 0.0
    val_seconds: list[float] = field(default_factory=list)  # training seconds (evals excluded) per val point


@torch.inference_mode()
def evaluate(model: MLP, x: torch.Tensor, y: torch.Tensor, chunk: int = 1 << 16) -> float:
    """Mean cross-entropy (nats per character) of `model` over all windows of a split."""
    if len(y) == 0:
        return math.nan
    total = 0.0
    for start in range(0, len(y), chunk):
        logits = model(x[start : start + chunk])
        total += F.cross_entropy(logits, y[start : start + chunk], reduction="sum").item()
    return total / len(y)


def train_loop(
    model: MLP,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    eval_every: int = 10_000,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Run minibatch SGD in place on `model`; record every step's loss and periodic val loss."""
    device = x_train.device
    losses: list[torch.Tensor] = []  # this block's detached scalars: no sync, no copy per step
    blocks: list[torch.Tensor] = []  # every 1,000 steps the block is stacked into one tensor
    history = History(torch.empty(0))
    params = list(model.parameters())
    started = time.perf_counter()
    eval_seconds = 0.0
    bar = tqdm(total=schedule.steps, desc=desc, disable=not progress, unit="step", mininterval=0.5)
    model.train()
    for step in range(schedule.steps):
        ix = torch.randint(0, len(y_train), (schedule.batch_size,), generator=generator, device=device)
        loss = F.cross_entropy(model(x_train[ix]), y_train[ix])
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            torch._foreach_add_(params, [p.grad for p in params], alpha=-schedule.lr_at(step))
        losses.append(loss.detach())
        done = step + 1
        if len(losses) == 1000 or done == schedule.steps:
            blocks.append(torch.stack(losses))
            losses = []
        if x_val is not None and (done % eval_every == 0 or done == schedule.steps):
            eval_started = time.perf_counter()
            history.val_seconds.append(eval_started - started - eval_seconds)
            history.val_points.append((done, evaluate(model, x_val, y_val)))
            eval_seconds += time.perf_counter() - eval_started
        if progress and (done % 1000 == 0 or done == schedule.steps):
            bar.update(done - bar.n)
            postfix = {"loss": f"{blocks[-1].mean():.4f}"}
            if history.val_points:
                postfix["val"] = f"{history.val_points[-1][1]:.4f}"
            bar.set_postfix(postfix)
    bar.close()
    model.eval()
    history.step_losses = torch.cat(blocks).cpu() if blocks else torch.empty(0)
    history.wall_seconds = time.perf_counter() - started
    return history


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help=f"word list, one per line (default: download {REFERENCE_URL})")
    p.add_argument("--out", type=Path, default=Path("weights/names-mlp.safetensors"), help="checkpoint path")
    p.add_argument("--block-size", type=int, default=3, help="characters of context")
    p.add_argument("--n-embd", type=int, default=10, help="embedding size per character")
    p.add_argument("--n-hidden", type=int, default=300, help="tanh hidden units")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--lr", type=float, default=0.1, help="learning rate before the decay step")
    p.add_argument("--lr-after", type=float, default=0.01, help="learning rate from the decay step on")
    p.add_argument("--decay-step", type=int, default=None, help="step where lr drops (default: halfway)")
    p.add_argument("--init", default="scaled", help=f"initialisation: {INIT_SCHEMES_HELP}")
    p.add_argument("--seed", type=int, default=1337, help="seed for initialisation and minibatches")
    p.add_argument("--split-seed", type=int, default=42, help="seed of the word-level split")
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--eval-every", type=int, default=10_000, help="steps between val evaluations")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for name in ("block_size", "n_embd", "n_hidden", "batch_size", "steps", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    data_path = args.data if args.data is not None else download_word_list()
    words = read_words(data_path)
    vocab = Vocab.from_words(words)
    splits = split_words(words, args.split_seed, tuple(args.split))
    config = MLPConfig(vocab.size, args.block_size, args.n_embd, args.n_hidden)
    windows = {
        name: tuple(t.to(device) for t in build_windows(getattr(splits, name), vocab, config.block_size))
        for name in ("train", "val", "test")
    }
    torch.manual_seed(args.seed)
    init_gen = torch.Generator().manual_seed(args.seed)
    model = MLP(config, init=args.init, generator=init_gen).to(device)
    batch_gen = torch.Generator(device=device).manual_seed(args.seed)
    schedule = Schedule(args.steps, args.batch_size, args.lr, args.lr_after, args.decay_step)
    print(
        f"{len(words)} words ({len(splits.train)}/{len(splits.val)}/{len(splits.test)}), "
        f"alphabet {vocab.size}, {count_parameters(model)} parameters, device {device}",
        file=sys.stderr,
    )
    history = train_loop(
        model,
        *windows["train"],
        schedule,
        batch_gen,
        *windows["val"],
        eval_every=args.eval_every,
        progress=not args.no_progress,
    )
    metrics = {
        "train_loss": evaluate(model, *windows["train"]),
        "val_loss": evaluate(model, *windows["val"]),
        "test_loss": evaluate(model, *windows["test"]),
        "steps": schedule.steps,
        "wall_seconds": round(history.wall_seconds, 2),
        "steps_per_second": round(schedule.steps / history.wall_seconds, 1),
        "device": str(device),
    }
    checkpoint = Checkpoint(
        config=config,
        vocab=vocab,
        state_dict=model.state_dict(),
        known_word_hashes=hash_words(words),
        metrics=metrics,
        data={
            "source": str(args.data) if args.data is not None else REFERENCE_URL,
            "sha256": file_sha256(data_path),
            "word_count": len(words),
            "split_seed": args.split_seed,
            "split_fractions": list(args.split),
            "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        },
        train_args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    )
    png = args.out.with_suffix(".png")
    plot_loss_curve(history, schedule, png, title=f"{args.out.stem}: {config}")
    save_checkpoint(args.out, checkpoint)
    print(
        f"train {metrics['train_loss']:.4f}  val {metrics['val_loss']:.4f}  test {metrics['test_loss']:.4f}  "
        f"({history.wall_seconds:.1f}s, {metrics['steps_per_second']} steps/s)\nwrote {args.out} and {png}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
