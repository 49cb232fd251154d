"""In process, what sharing a pass saves (issue 19): 16 lone requests one after the other against
the same 16 drawn (or scored) in one pass, on each forward-pass model whose self-test passes, with
one torch/BLAS thread as the server's workers run; and what the padding costs a lone request (the
same 16 one by one with steps of 1 row, unpadded). Prints medians; checks the bytes agree.

    python -m bench.shared_pass [--repeats 15]
"""

from __future__ import annotations

import argparse

import torch
from threadpoolctl import threadpool_limits

from bench.processes import ROOT
from bench.timing import median_seconds
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.engine.sources import ForwardSource

MODELS = ["names-gru", "names-transformer", "names-wavenet"]
WORDS = ["emma", "olivia", "noah", "liam", "ava", "mia", "lucas", "zoe"] * 2


def measure(model: LanguageModel, repeats: int) -> str:
    params = SamplingParams()
    alone = [model.sample(1, params, seed).names for seed in range(16)]
    if model.batching == "exact":  # "off": a shared pass may change a loss's last bits (not served so)
        assert model.sample_batch([(1, seed) for seed in range(16)], params) == alone
    separate = median_seconds(lambda: [model.sample(1, params, seed) for seed in range(16)], repeats)
    shared = median_seconds(lambda: model.sample_batch([(1, seed) for seed in range(16)], params), repeats)
    losses_alone = median_seconds(lambda: [model.word_losses([word]) for word in WORDS], repeats)
    losses_shared = median_seconds(lambda: model.word_losses(WORDS), repeats)
    many = median_seconds(lambda: model.sample(10_000, params, 1), 3)
    unpadded, unpadded_losses = unpadded_seconds(model, repeats)
    return (
        f"{model.name} (batching {model.batching}, min rows {model.min_rows}): 16 lone /sample n=1 "
        f"{separate * 1e3:.2f} ms one by one, {shared * 1e3:.2f} ms in one pass ({separate / shared:.1f}x); "
        f"16 one-word /loss {losses_alone * 1e3:.2f} ms vs {losses_shared * 1e3:.2f} ms "
        f"({losses_alone / losses_shared:.1f}x); 10,000 names {10_000 / many:,.0f} names/s; "
        f"unpadded (1 row) one by one: /sample {unpadded * 1e3:.2f} ms ({separate / unpadded:.2f}x padded), "
        f"/loss {unpadded_losses * 1e3:.2f} ms ({losses_alone / unpadded_losses:.2f}x padded)"
    )


def unpadded_seconds(model: LanguageModel, repeats: int) -> tuple[float, float]:
    """The 16 lone /sample n=1 and one-word /loss requests with every step on 1 row: the cost of a
    lone request were it not padded (not how it is served)."""
    sources = [source for source in model.sources if isinstance(source, ForwardSource)]
    minimum = [source.min_rows for source in sources]
    for source in sources:
        source.min_rows = 1
    try:
        params = SamplingParams()
        samples = median_seconds(lambda: [model.sample(1, params, seed) for seed in range(16)], repeats)
        losses = median_seconds(lambda: [model.word_losses([word]) for word in WORDS], repeats)
    finally:
        for source, rows in zip(sources, minimum, strict=True):
            source.min_rows = rows
    return samples, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for name in MODELS:
            model = LanguageModel.from_checkpoint(ROOT / "weights" / f"{name}.safetensors", device="cpu")
            model.check_batching()
            print(measure(model, args.repeats), flush=True)


if __name__ == "__main__":
    main()
