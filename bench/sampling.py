"""In-process sampling throughput: the project's sampler against the notebook's per-name loop."""

from __future__ import annotations

import statistics
import time

import torch

from model.inference import LanguageModel


def naive_sample(model: LanguageModel, n: int, seed: int, max_length: int = 32) -> list[str]:
    """The seed notebook's way: one name at a time, one forward and one .item() per character."""
    generator = torch.Generator().manual_seed(seed)
    names = []
    with torch.inference_mode():
        for _ in range(n):
            context, out = [0] * model.config.block_size, []
            while len(out) < max_length:
                logits = model.model(torch.tensor([context]).to(model.device))
                probs = torch.softmax(logits, dim=1)
                ix = torch.multinomial(probs.cpu(), 1, generator=generator).item()
                if ix == 0:
                    break
                out.append(ix)
                context = [*context[1:], ix]
            names.append(model.vocab.decode(out))
    return names


def names_per_second(sample, n: int, repeats: int) -> float:
    """Median names/s over `repeats` calls of `sample(n, seed)`."""
    sample(n, 0)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        sample(n, i + 1)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def measure(model: LanguageModel, sizes: tuple[int, ...], naive_cap: int, budget_s: float) -> list[dict]:
    """For each n: project sampler vs naive loop (naive timed on at most `naive_cap` names)."""
    rows = []
    for n in sizes:
        ours = names_per_second(lambda k, s: model.sample(k, seed=s), n, _repeats(n, budget_s))
        naive_n = min(n, naive_cap)
        naive = names_per_second(lambda k, s: naive_sample(model, k, s), naive_n, 3)
        rows.append(
            {
                "n": n,
                "sampler_names_per_s": ours,
                "naive_names_per_s": naive,
                "naive_timed_on": naive_n,
                "speedup": ours / naive,
            }
        )
    return rows


def _repeats(n: int, budget_s: float) -> int:
    return max(3, min(200, int(budget_s * 2000 / n)))
