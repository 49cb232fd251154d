"""python -m model.experiments {init,lr-finder,batch-size,all}: run, judge the claims, write the report.

Defaults keep `all` within about 15 minutes on 2 CPU cores (measured: about 9): 20,000 steps per init
scheme (the notebook ran the reference recipe's full length, `model.families.mlp.RECIPE.steps`: pass
it as `--steps`), 15,000 per batch size, 1,000 for the lr finder. Everything else (model shape, batch,
lr schedule, seeds, split) is the MLP family's reference preset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from model.experiments.batch_size import LR_SCALINGS, run_batch_sizes
from model.experiments.claims import judge
from model.experiments.common import ROOT, Data, default_data_path, load_data
from model.experiments.figures import draw_all
from model.experiments.inits import initial_loss_survey, run_init_schemes
from model.experiments.lr_finder import FINDER_INITS, run_lr_finder
from model.experiments.report import Meta, render, write_report
from model.experiments.stats import unigram_entropy
from model.families.mlp import RECIPE

EXPERIMENTS = ("init", "lr-finder", "batch-size", "all")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m model.experiments", description=__doc__.split("\n")[0])
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--data", type=Path, help="word list (default: ../shared/data/names.txt, else download)")
    p.add_argument(
        "--steps", type=int, default=20_000, help=f"steps per init scheme (notebook: {RECIPE.steps})"
    )
    p.add_argument("--batch-steps", type=int, default=15_000, help="steps per batch size")
    p.add_argument("--finder-steps", type=int, default=1000, help="steps of the lr sweep")
    p.add_argument("--lr-scaling", choices=LR_SCALINGS, default="none", help="lr for other batch sizes")
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "experiments", help="report and PNGs")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on 2 cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name, least in (("steps", 10), ("batch_steps", 2), ("finder_steps", 2), ("threads", 1)):
        if getattr(args, name) < least:
            p.error(f"--{name.replace('_', '-')} must be >= {least}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, "python -m model.experiments " + " ".join(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("\ninterrupted: the report was not rewritten", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, command: str) -> int:
    started = time.perf_counter()
    path = args.data if args.data is not None else default_data_path()
    data = load_data(path)
    progress, which = not args.no_progress, args.experiment
    runs = run_init_schemes(data, args.steps, progress=progress) if which in ("init", "all") else []
    survey = initial_loss_survey(data) if runs else []
    finders = (
        [run_lr_finder(data, init, args.finder_steps, progress) for init in FINDER_INITS]
        if which in ("lr-finder", "all")
        else []
    )
    batches = (
        run_batch_sizes(data, args.batch_steps, scaling=args.lr_scaling, progress=progress)
        if which in ("batch-size", "all")
        else []
    )
    unigram = unigram_entropy(data.train[1])
    verdicts = judge(runs, finders, survey, unigram, data.config.n_hidden)
    figures = draw_all(args.out_dir, runs, finders, batches)
    meta = _meta(data, command, args.threads, time.perf_counter() - started, unigram, figures)
    write_report(args.out_dir / "REPORT.md", render(meta, verdicts, runs, survey, finders, batches))
    for v in verdicts:
        print(f"claim {v.number}: {v.status}", file=sys.stderr)
    print(f"wrote {args.out_dir / 'REPORT.md'} in {meta.total_seconds:.0f} s", file=sys.stderr)
    return 0


def _meta(data: Data, command: str, threads: int, seconds: float, unigram: float, figures: list[str]) -> Meta:
    path = Path(data.source).resolve()
    return Meta(
        command=command,
        config=data.config,
        data_source=os.path.relpath(path, ROOT) if path.is_relative_to(ROOT.parent) else path.name,
        data_sha256=data.sha256,
        word_count=data.word_count,
        windows=(len(data.train[1]), len(data.val[1])),
        torch_version=torch.__version__,
        threads=threads,
        total_seconds=seconds,
        unigram_entropy=unigram,
        figures=tuple(figures),
    )


if __name__ == "__main__":
    sys.exit(main())
