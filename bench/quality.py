"""Sample quality beyond NLL: how a model's drawn names compare with held-out real names.

A model's test NLL says how well it predicts real names, not what its samples look like. These
figures compare a set of drawn names with a set of real ones (the test split; the same figures
for real training names against it give the floor that sampling noise alone reaches):

- far-novel share: names that are not known and at least 2 edits from every known name (a
  "novel" name one letter from a real one is hardly new);
- the share of 3-letter names (the served MLP's weakness that no NLL column shows);
- length total variation: half the L1 distance between the two length distributions;
- end-bigram Jensen-Shannon divergence (natural log) between the distributions of the last two
  characters (`"." + name` for one-letter names);
- a Frechet distance between Gaussians fitted to character 1-3-gram features (the counts of the
  reference's most frequent n-grams of `"." + name + "."`, each name's vector scaled to length 1),
  with a bootstrap interval (+- 1.96 bootstrap standard deviations);
- precision and recall (Kynkaanniemi et al. 2019, k nearest neighbours) on the same features.

Everything is NumPy and seeded (`numpy.random.Generator`), so the figures are reproducible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from model.engine.filters import neighbour_hashes
from model.hashing import contains, word_hashes

FEATURE_NGRAMS = 128  # the reference's most frequent 1-3-grams used as features
RESAMPLES = 200  # bootstrap resamples for the Frechet interval
NEIGHBOURS = 3  # k of precision / recall


def length_tv(a: list[str], b: list[str]) -> float:
    """Total variation distance between the length distributions of `a` and `b`."""
    return _total_variation(Counter(map(len, a)), Counter(map(len, b)))


def end_bigrams(names: list[str]) -> Counter[str]:
    """How often each name ends in each pair of characters ("." stands before a one-letter name)."""
    return Counter(("." + name)[-2:] for name in names)


def end_bigram_js(a: list[str], b: list[str]) -> float:
    """Jensen-Shannon divergence (nats, at most ln 2) between the end-bigram distributions."""
    return js_divergence(end_bigrams(a), end_bigrams(b))


def js_divergence(p_counts: Counter[str], q_counts: Counter[str]) -> float:
    """Jensen-Shannon divergence (natural log) between two distributions given by counts."""
    keys = sorted(set(p_counts) | set(q_counts))
    p = np.array([p_counts[k] for k in keys], dtype=np.float64)
    q = np.array([q_counts[k] for k in keys], dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(0.5 * _kl(p, m) + 0.5 * _kl(q, m))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    seen = p > 0
    return float(np.sum(p[seen] * np.log(p[seen] / q[seen])))


def _total_variation(p_counts: Counter, q_counts: Counter) -> float:
    p_total, q_total = sum(p_counts.values()), sum(q_counts.values())
    keys = set(p_counts) | set(q_counts)
    return 0.5 * sum(abs(p_counts[k] / p_total - q_counts[k] / q_total) for k in keys)


def ngrams(name: str) -> list[str]:
    """The character 1-, 2- and 3-grams of `"." + name + "."` (with repeats)."""
    padded = f".{name}."
    return [padded[i : i + n] for n in (1, 2, 3) for i in range(len(padded) - n + 1)]


def ngram_vocabulary(names: list[str], size: int = FEATURE_NGRAMS) -> list[str]:
    """The `size` most frequent 1-3-grams of `names` (ties in string order): the feature axes."""
    counts = Counter(g for name in names for g in ngrams(name))
    return sorted(counts, key=lambda g: (-counts[g], g))[:size]


def features(names: list[str], vocabulary: list[str]) -> np.ndarray:
    """float64[len(names), len(vocabulary)]: each name's n-gram counts, scaled to unit length (a
    name with none of the vocabulary's n-grams stays zero)."""
    index = {g: i for i, g in enumerate(vocabulary)}
    out = np.zeros((len(names), len(vocabulary)))
    for row, name in enumerate(names):
        for gram in ngrams(name):
            col = index.get(gram)
            if col is not None:
                out[row, col] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=out, where=norms > 0)


def frechet(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of `x` and of `y`:
    |mu_x - mu_y|^2 + tr(S_x) + tr(S_y) - 2 tr((S_x^1/2 S_y S_x^1/2)^1/2), with symmetric
    eigendecompositions (no complex square roots); clipped at 0 against rounding."""
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    cov_x = np.atleast_2d(np.cov(x, rowvar=False))
    cov_y = np.atleast_2d(np.cov(y, rowvar=False))
    values, vectors = np.linalg.eigh(cov_x)
    root_x = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = np.linalg.eigvalsh(root_x @ cov_y @ root_x).clip(min=0)
    distance = np.sum((mean_x - mean_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * np.sqrt(middle).sum()
    return max(float(distance), 0.0)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def frechet_interval(
    x: np.ndarray, y: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, z: float = 1.96
) -> Interval:
    """`frechet(x, y)` +- `z` bootstrap standard deviations (both sets resampled with replacement;
    1.96: about 95 %), clipped at 0. Not the replicates' percentiles: a resample repeats rows, which
    inflates the distance's finite-sample bias, so the replicates lie above the estimate (about 2x
    for 2,000 names) while their spread still measures its sampling noise."""
    rng = np.random.default_rng(seed)
    draws = [
        frechet(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))])
        for _ in range(resamples)
    ]
    value, spread = frechet(x, y), z * float(np.std(draws, ddof=1))
    return Interval(value, max(value - spread, 0.0), value + spread)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(squared.clip(min=0))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the share of `fake`
    rows inside the ball of some `real` row whose radius is its distance to its k-th nearest other
    real row; recall is the same with the roles swapped."""
    within_real = _distances(real, real)
    within_fake = _distances(fake, fake)
    radius_real = np.sort(within_real, axis=1)[:, k]  # column 0: the row itself
    radius_fake = np.sort(within_fake, axis=1)[:, k]
    across = _distances(fake, real)  # [fake, real]
    precision = (across <= radius_real[None, :]).any(axis=1).mean()
    recall = (across <= radius_fake[:, None]).any(axis=0).mean()
    return float(precision), float(recall)


def far_novel(names: list[str], known: list[str]) -> list[bool]:
    """Whether each name is not in `known` and no single edit (deletion, substitution, insertion)
    turns it into a known name; by hashes (`model.engine.filters.neighbour_hashes`)."""
    if not names:
        return []
    blocked = np.unique(word_hashes(known))
    ok = ~contains(blocked, word_hashes(names))
    alphabet = "".join(sorted(set("".join(known))))
    candidates = np.flatnonzero(ok & np.array([len(n) > 0 for n in names]))
    if len(candidates) and alphabet:
        hashes, owners = neighbour_hashes([names[i] for i in candidates.tolist()], alphabet)
        ok[candidates[owners[contains(blocked, hashes)]]] = False
    if not all(len(n) for n in names):  # the empty name: a deletion away from every 1-letter name
        short = any(len(k) == 1 for k in known)
        ok &= np.array([len(n) > 0 or not short for n in names])
    return ok.tolist()


@dataclass(frozen=True)
class Quality:
    """One set of names measured against real ones."""

    count: int
    far_novel: float
    three_letters: float
    length_tv: float
    end_js: float
    frechet: Interval
    precision: float
    recall: float


def measure(
    names: list[str],
    real: list[str],
    known: list[str],
    vocabulary: list[str],
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Quality:
    """Every figure of `names` against `real` (`known`: the names no far-novel one is near;
    `vocabulary`: the feature n-grams, from names other than `real`)."""
    x, y = features(names, vocabulary), features(real, vocabulary)
    precision, recall = precision_recall(y, x)
    return Quality(
        count=len(names),
        far_novel=float(np.mean(far_novel(names, known))),
        three_letters=sum(len(n) == 3 for n in names) / len(names),
        length_tv=length_tv(names, real),
        end_js=end_bigram_js(names, real),
        frechet=frechet_interval(x, y, resamples, seed),
        precision=precision,
        recall=recall,
    )
