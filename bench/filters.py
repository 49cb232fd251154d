"""What keeping names costs (issue 22): `distinct`, `min_distance` and a large `exclude`, in process.

    python -m bench.filters [--model names-mlp]

Prints the median time (5 runs, different seeds) of one 1,000-name answer for each setting, the
time to hash every one-edit neighbour of 2,000 names (`model.engine.filters.neighbour_hashes`), and
the share of plainly drawn names already at least two edits from every real name.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench.processes import ROOT
from model.engine.filters import NameFilter, neighbour_hashes
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams


def median_ms(work: Callable[[int], object], runs: int = 5) -> float:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        work(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="names-mlp")
    args = parser.parse_args()
    model = LanguageModel.from_checkpoint(ROOT / "weights" / f"{args.model}.safetensors", "cpu")
    exclude = [s.name for s in model.sample(20_000, SamplingParams(temperature=1.5), seed=99).names]
    settings = {
        "plain": SamplingParams(),
        "distinct": SamplingParams(distinct=True),
        "min_distance=1": SamplingParams(min_distance=1),
        "min_distance=2": SamplingParams(min_distance=2),
        "min_distance=2, 20,000 names in exclude": SamplingParams(min_distance=2, exclude=exclude),
    }
    for label, params in settings.items():
        ms = median_ms(lambda seed, params=params: model.sample(1000, params, seed=seed))
        print(f"{args.model}: 1,000 names, {label}: median {ms:.1f} ms")
    names = [s.name for s in model.sample(2000, SamplingParams(), seed=3).names]
    count = len(neighbour_hashes(names, model.vocab.alphabet)[0])
    ms = median_ms(lambda _: neighbour_hashes(names, model.vocab.alphabet))
    print(f"{args.model}: the {count:,} one-edit neighbours of 2,000 names hashed in median {ms:.1f} ms")
    far = NameFilter.of(SamplingParams(min_distance=2).checked(model.vocab), False,
                        model.checkpoint.known_word_hashes.numpy(), model.vocab.alphabet)  # fmt: skip
    drawn = [s.name for s in model.sample(5000, SamplingParams(), seed=5).names]
    share = sum(far.keeps(drawn)) / len(drawn)
    print(f"{args.model}: {share:.1%} of 5,000 plainly drawn names are 2+ edits from every real name")


if __name__ == "__main__":
    main()
