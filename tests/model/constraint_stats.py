"""Statistics for the constrained-sampling tests: a finite language enumerated and scored by the
model's own word losses, and Pearson's chi-square test of drawn names against it (no SciPy)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np

from model.engine.language_model import LanguageModel


def enumerate_language(alphabet: str, prefix: str, middle_lengths: tuple[int, ...], suffix: str) -> list[str]:
    """Every prefix + (middle of one of `middle_lengths` letters) + suffix."""
    letters = alphabet[1:]
    return [
        prefix + "".join(middle) + suffix
        for k in middle_lengths
        for middle in itertools.product(letters, repeat=k)
    ]


def conditional_probs(model: LanguageModel, words: list[str], prefix: str) -> tuple[np.ndarray, float]:
    """Each word's probability given `prefix` (from its per-character losses, the end included),
    normalised over `words`, and their total: P(words | prefix) under the unshaped model."""
    joint = np.array([math.exp(-sum(score.nlls)) for score in model.word_losses(words)])
    prefix_prob = math.exp(-sum(model.word_losses([prefix])[0].nlls[:-1])) if prefix else 1.0
    return joint / joint.sum(), float(joint.sum() / prefix_prob)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square(dof): the regularised upper incomplete gamma Q(dof/2, x/2)
    (series below a + 1, Lentz's continued fraction above, as in Numerical Recipes)."""
    a, half = dof / 2.0, x / 2.0
    if half <= 0:
        return 1.0
    log_front = -half + a * math.log(half) - math.lgamma(a)
    if half < a + 1:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= half / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = half + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def _pooled_statistic(words: list[str], probs: np.ndarray, names: list[str]) -> tuple[float, int]:
    """Pearson's statistic of `names` against `probs` over `words` and its degrees of freedom: bins
    with an expected count of at least 5, the rest pooled into one bin."""
    index = {word: i for i, word in enumerate(words)}
    observed = np.zeros(len(words))
    for name, count in Counter(names).items():
        observed[index[name]] += count
    expected = probs * len(names)
    big = expected >= 5
    e = np.append(expected[big], expected[~big].sum())
    o = np.append(observed[big], observed[~big].sum())
    if e[-1] == 0:
        e, o = e[:-1], o[:-1]
    return float(((o - e) ** 2 / e).sum()), len(e) - 1


def chi_square_p(words: list[str], probs: np.ndarray, names: list[str]) -> float:
    """Pearson's test of `names` against the distribution `probs` over `words` (small bins pooled).
    Every name must be in `words`."""
    return chi2_sf(*_pooled_statistic(words, probs, names))


def design_effect(words: list[str], probs: np.ndarray, names: list[str], group: int) -> float:
    """How much more the counts of `names` vary than multinomial counts would, when they come in
    consecutive groups of `group` names that share a particle system (SMC): the mean over the
    likely words (expected >= 5 in all) of var(count per group) / (group * p * (1 - p)), at least 1.
    Dividing a chi-square statistic by it is the first-order Rao-Scott correction for clusters."""
    index = {word: i for i, word in enumerate(words)}
    groups = len(names) // group
    counts = np.zeros((groups, len(words)))
    for g in range(groups):
        for name in names[g * group : (g + 1) * group]:
            counts[g, index[name]] += 1
    likely = probs * len(names) >= 5
    expected_var = group * probs[likely] * (1 - probs[likely])
    ratios = counts[:, likely].var(axis=0, ddof=1) / expected_var
    return max(1.0, float(ratios.mean()))


def corrected_chi_square_p(
    words: list[str], probs: np.ndarray, names: list[str], group: int
) -> tuple[float, float]:
    """`chi_square_p` with the statistic divided by the `design_effect`; returns (p, effect)."""
    effect = design_effect(words, probs, names, group)
    statistic, dof = _pooled_statistic(words, probs, names)
    return chi2_sf(statistic / effect, dof), effect
