"""Rejection: draw names as unconstrained sampling does, keep those inside the language.

Exact (every kept name is a draw from p(name | name in L)); costs 1 / p_constraint draws a name.
A candidate is drawn for up to hi - len(prefix) + 1 steps, so a name of exactly `hi` letters gets
its end token drawn; longer ones (and names never ended) are rejected.
"""

from __future__ import annotations

from model.engine.constraints.language import Language
from model.engine.sampler import StreamKeys, sample_rows
from model.engine.shaping import Shaping
from model.engine.sources import NextCharSource


def rejection_round(
    source: NextCharSource, alphabet: str, language: Language, shaping: Shaping, draws: int, seed: int
) -> list[tuple[str, float]]:
    """The (text after the prefix, unshaped log-probability sum) of the accepted names among `draws`
    candidates of stream `seed`, in stream order."""
    keys = StreamKeys.of_requests([(draws, seed)])
    sampled = sample_rows(source, alphabet, keys, list(language.prefix), language.steps + 1, shaping)
    index = {c: i for i, c in enumerate(alphabet)}
    delta = language.dfa.delta.tolist()
    accepting = language.dfa.accepting.tolist()
    prefix_len = len(language.prefix)
    kept = []
    for text, lp, cut in zip(sampled.texts, sampled.log_prob_sums, sampled.truncated, strict=True):
        if cut or not language.lo <= prefix_len + len(text) <= language.hi:
            continue
        state = language.state
        for c in text:
            state = delta[state][index[c]]
        if accepting[state]:
            kept.append((text, lp))
    return kept
