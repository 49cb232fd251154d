"""Rejection: draw names as unconstrained sampling does, keep those inside the language.

Exact (every kept name is a draw from p(name | name in L)); costs 1 / p_constraint draws a name.
A candidate is drawn for up to hi - len(prefix) + 1 steps, so a name of exactly `hi` letters gets
its end token drawn; longer ones (and names never ended) are rejected.
"""

from __future__ import annotations

import numpy as np

from model.engine import cancel
from model.engine.constraints.language import Language
from model.engine.sampler import StreamKeys, sample_rows
from model.engine.shaping import Shaping
from model.engine.sources import NextCharSource
from model.vocab import BOUNDARY_ID


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


def leaves_one_name(source: NextCharSource, language: Language, shaping: Shaping) -> bool:
    """Whether `shaping` leaves one name after the prefix: exactly one id of positive shaped
    probability at every step of its one path. Temperature 0 always does; top_k = 1, a top_p below
    the likeliest id's share or a tiny temperature usually do. Then one draw is every draw, and it
    is in the language or p_constraint is exactly 0 (no SMC round need look for more)."""
    if shaping.plain:  # the model's own distribution: every id positive
        return False
    state = source.start(list(language.prefix))
    for t in range(language.steps + 1):
        cancel.charge(source.step_seconds(len(language.prefix) + t + 2))
        cdf = source.cdf(state, shaping, first_step=t == 0)[0]
        positive = np.flatnonzero(np.diff(cdf, prepend=0.0) > 0)
        if len(positive) != 1:
            return False
        if positive[0] == BOUNDARY_ID:
            break
        state = source.advance(state, positive)
    return True
