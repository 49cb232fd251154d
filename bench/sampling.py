"""In-process sampling throughput: the engine's sampler against two plain ways of generating.

- the notebook's loop: one name at a time, one forward and one `.item()` per character;
- makemore's `generate`: all names together, but a full forward over the growing prefix at every
  step (no state carried between steps).
Both use the same weights as the engine (the served, inference-mode module).
"""

from __future__ import annotations

import statistics
import time

import torch

from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams


def _last_logits(model: LanguageModel, prefixes: torch.Tensor) -> torch.Tensor:
    """Logits after each row of `prefixes` ('.' + characters), from the whole-sequence forward."""
    return model.network.sequence_logits(prefixes.to(model.device))[:, -1].double()


def naive_sample(model: LanguageModel, n: int, seed: int, max_length: int = 32) -> list[str]:
    """The seed notebook's way: one name at a time, one forward and one .item() per character."""
    generator = torch.Generator().manual_seed(seed)
    names = []
    with torch.inference_mode():
        for _ in range(n):
            out = [0]
            while len(out) <= max_length:
                probs = torch.softmax(_last_logits(model, torch.tensor([out])), dim=1)
                ix = torch.multinomial(probs.cpu(), 1, generator=generator).item()
                if ix == 0:
                    break
                out.append(ix)
            names.append(model.vocab.decode(out[1:]))
    return names


def makemore_sample(model: LanguageModel, n: int, seed: int, max_length: int = 32) -> list[str]:
    """makemore's `generate`: every step forwards the whole growing prefix of every name."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.zeros((n, 1), dtype=torch.long)
    with torch.inference_mode():
        for _ in range(max_length):
            probs = torch.softmax(_last_logits(model, idx), dim=1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
            if (idx[:, 1:] == 0).any(dim=1).all():
                break
    names = []
    for row in idx[:, 1:].tolist():
        names.append(model.vocab.decode(row[: row.index(0)] if 0 in row else row))
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
    """For each n: the engine against the notebook loop and makemore's generate (each timed on at
    most `naive_cap` names)."""
    rows = []
    params = SamplingParams()
    for n in sizes:
        ours = names_per_second(lambda k, s: model.sample(k, params, s), n, _repeats(n, budget_s))
        capped = min(n, naive_cap)
        naive = names_per_second(lambda k, s: naive_sample(model, k, s), capped, 3)
        makemore = names_per_second(lambda k, s: makemore_sample(model, k, s), capped, 3)
        rows.append({
            "n": n,
            "sampler_names_per_s": ours,
            "naive_names_per_s": naive,
            "makemore_names_per_s": makemore,
            "naive_timed_on": capped,
            "speedup": ours / naive,
            "speedup_vs_makemore": ours / makemore,
        })  # fmt: skip
    return rows


def _repeats(n: int, budget_s: float) -> int:
    return max(3, min(200, int(budget_s * 2000 / n)))
