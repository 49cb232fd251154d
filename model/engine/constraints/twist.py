"""A look-ahead for models without a table: a smoothed n-gram fitted to the model's own names.

Sequential Monte Carlo (`smc`) proposes each letter from the model times a "twist": an estimate
of the probability of still finishing inside the language. For a table model that would be the
exact backward pass; for any other model we fit a trigram to names the model itself draws (fixed
seed, so the twist, and every seeded answer built on it, repeats), smooth it so that every letter
keeps some probability (then the twist is positive wherever the language is still reachable,
which keeps SMC consistent), and run the exact backward pass over it. A better twist only lowers
the variance of the weights; a poor one never biases the limit.
"""

from __future__ import annotations

import numpy as np

from model.engine.constraints.exact import Backward
from model.engine.sampler import StreamKeys, sample_rows
from model.engine.shaping import Shaping
from model.engine.sources import NextCharSource

TWIST_NAMES = 8192  # names drawn from the model to fit the n-gram (about 0.5 s on the GRU)
TWIST_SEED = 0x7477697374  # "twist": a fixed stream, the same at every load
SMOOTHING = 20.0  # pseudo-counts given to the lower order's distribution at each order
MAX_LENGTH = 32


def fit_ngrams(source: NextCharSource, alphabet: str, window: int) -> list[np.ndarray]:
    """For each order w = 1 .. `window`: float64[V**w, V], log p(next | last w ids), '.'-padded
    like a context table's code, each order interpolated down to the one below (and the first
    to a +1 unigram); all from one sample of the model's names."""
    v = len(alphabet)
    keys = StreamKeys.of_requests([(TWIST_NAMES, TWIST_SEED)])
    texts = sample_rows(source, alphabet, keys, [], MAX_LENGTH, Shaping(forbid_end_first=True)).texts
    index = {c: i for i, c in enumerate(alphabet)}
    counts = [np.zeros((v**w, v)) for w in range(window + 1)]
    for text in texts:
        history = [0] * window
        for idx in [*(index[c] for c in text), 0]:
            for w in range(window + 1):
                code = 0
                for h in history[window - w :]:
                    code = code * v + h
                counts[w][code, idx] += 1
            history = [*history[1:], idx]
    probs = (counts[0] + 1.0) / (counts[0] + 1.0).sum(axis=1, keepdims=True)
    tables = []
    for w in range(1, window + 1):
        lower = np.tile(probs, (v, 1))  # context a·rest backs off to rest
        totals = counts[w].sum(axis=1, keepdims=True)
        probs = (counts[w] + SMOOTHING * lower) / (totals + SMOOTHING)
        tables.append(np.log(probs))
    return tables


def upper_envelope(passes: list[Backward], contexts: int) -> Backward:
    """One twist from backward passes over n-grams of different orders: each beta widened to
    `contexts` (a lower order's context is the tail of a higher one's), then the largest."""
    v = passes[0].q.shape[1]
    betas = {}
    for t in passes[0].betas:
        widened = [np.tile(p.betas[t], (contexts // p.betas[t].shape[0], 1)) for p in passes]
        betas[t] = np.maximum.reduce(widened)
    top = max(passes, key=lambda p: p.q.shape[0])
    first = np.maximum.reduce([p.first for p in passes])
    return Backward(
        np.zeros((contexts, v)) if top.q.shape[0] != contexts else top.q, betas, first, top.start_code
    )
