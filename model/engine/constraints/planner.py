"""Choosing how a constrained request is drawn, within its budget, and saying how it was.

A table model whose backward pass fits `knobs.EXACT_MAX_BYTES` is always drawn exactly. Any
other source starts with a rejection round (`knobs.REJECTION_PILOT` candidates or more), which
estimates p_constraint; rejection continues while p_constraint * K >= 1 (it then costs fewer
draws than K-particle SMC), otherwise SMC draws the missing names. Every round's randomness is
a stream derived from the request's seed, so seeded answers repeat.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from model.engine import cancel, knobs
from model.engine.constraints.exact import Backward, BackwardCache, backward_pass, draw_exact
from model.engine.constraints.language import Language
from model.engine.constraints.rejection import rejection_round
from model.engine.constraints.smc import run_smc, stream
from model.engine.constraints.twist import fit_ngrams, upper_envelope
from model.engine.sampler import StreamKeys, leaves_one_name
from model.engine.shaping import Shaping
from model.engine.sources import ContextTable, NextCharSource


@dataclass(frozen=True)
class ConstraintReport:
    """How names were drawn: `method`, `p_constraint` (exact when the method is exact, else an
    estimate), `draws` (names and particles drawn in all) and the mean final ESS of SMC groups
    (of `particles`) where SMC ran."""

    method: str
    p_constraint: float
    draws: int
    ess: float | None = None
    particles: int | None = None
    one_name: bool = False  # the shaping leaves one name (`leaves_one_name`): drawn once, p 0 or 1


@dataclass(frozen=True)
class Drawn:
    """Texts after the prefix with their unshaped log-probability sums, and the report."""

    names: list[tuple[str, float]]
    report: ConstraintReport


# Backward passes and SMC twists of every model in this process, least recently used dropped first.
SHARED_CACHE = BackwardCache(knobs.CONSTRAINT_CACHE_BYTES)


class ConstrainedSampler:
    """A model's constrained drawing: its caches (backward passes, the SMC twist) and the policy."""

    def __init__(self, source: NextCharSource, alphabet: str, cache: BackwardCache | None = None):
        self.source, self.alphabet = source, alphabet
        # One cache for every model of the process by default, so the bound is the process's.
        self.cache = SHARED_CACHE if cache is None else cache
        self._token = object()  # this model's part of a cache key (another model's passes differ)
        self._twist_tables: list[np.ndarray] = []
        self._lock = threading.Lock()

    def _table_window(self) -> int | None:
        if not isinstance(self.source, ContextTable):
            return None
        return round(math.log(self.source.context_count, self.source.vocab_size))

    def exact_fits(self, language: Language) -> bool:
        window = self._table_window()
        if window is None:
            return False
        contexts = self.source.vocab_size**window
        return language.steps * contexts * language.dfa.states * 8 <= knobs.EXACT_MAX_BYTES

    def _backward(
        self, key: Hashable, table: np.ndarray, window: int, language: Language, shaping: Shaping
    ) -> Backward:
        key = (self._token, key)
        found = self.cache.get(key)
        if found is None:
            code, v = 0, table.shape[1]
            for idx in language.prefix:
                code = (code * v + idx) % table.shape[0]
            found = backward_pass(table, window, language, shaping, code)
            self.cache.put(key, found)
        return found

    def exact(self, key: Hashable, language: Language, shaping: Shaping) -> Backward:
        """The exact backward pass of a table model (cached under `key`)."""
        window = self._table_window()
        assert window is not None
        return self._backward(("exact", key, shaping), self.source.table, window, language, shaping)

    def twist(self, key: Hashable, language: Language, shaping: Shaping) -> Backward:
        """The SMC look-ahead: per position, context and state, the larger of the backward passes
        over a trigram and over a bigram fitted to this model's own names (over the bigram alone
        when the automaton is large), at the request's temperature. The larger of the two: a twist
        that under-rates a continuation the model likes is what makes SMC weights uneven."""
        v = len(self.alphabet)
        window = 2 if language.steps * v * v * language.dfa.states * 8 <= knobs.EXACT_MAX_BYTES else 1
        with self._lock:
            if not self._twist_tables:
                # Fitted once per model, from a fixed seed, and kept: work of the model, not of the
                # request that happens to come first, so it is not charged to that request's budget
                # (otherwise the first request would meet its bound earlier than the same one later).
                with cancel.bounded():
                    self._twist_tables = fit_ngrams(self.source, self.alphabet, 2)
            tables = self._twist_tables[:window]
        twist_shaping = Shaping(temperature=shaping.temperature)  # full support: positive wherever L is
        cache_key = ("twist", window, key, shaping.temperature)
        cache_key = (self._token, cache_key)
        found = self.cache.get(cache_key)
        if found is None:
            passes = [
                self._backward(
                    ("twist-order", order, key, shaping.temperature), table, order, language, twist_shaping
                )
                for order, table in enumerate(tables, start=1)
            ]
            found = upper_envelope(passes, v**window)
            self.cache.put(cache_key, found)
        return found

    def draw(
        self,
        key: Hashable,
        language: Language,
        shaping: Shaping,
        n: int,
        seed: int,
        budget: int,
        method: str | None = None,
    ) -> Drawn:
        """Up to `n` names of `language` (fewer only when `budget` draws run out)."""
        if leaves_one_name(self.source, list(language.prefix), language.steps, shaping):
            only = rejection_round(self.source, self.alphabet, language, shaping, 1, seed)
            return Drawn(only * n, ConstraintReport("rejection", 1.0 if only else 0.0, 1, one_name=True))
        if method in (None, "exact") and self.exact_fits(language):
            backward = self.exact(key, language, shaping)
            if backward.p_constraint == 0.0:  # top_k / top_p leave no name of the language
                return Drawn([], ConstraintReport("exact", 0.0, 0))
            sampled = draw_exact(
                backward, self.source.table, language, self.alphabet, StreamKeys.of_requests([(n, seed)])
            )
            names = list(zip(sampled.texts, sampled.log_prob_sums, strict=True))
            return Drawn(names, ConstraintReport("exact", backward.p_constraint, n))
        return self._approximate(key, language, shaping, n, seed, budget, method)

    def _approximate(
        self,
        key: Hashable,
        language: Language,
        shaping: Shaping,
        n: int,
        seed: int,
        budget: int,
        method: str | None,
    ) -> Drawn:
        k = knobs.SMC_PARTICLES_PER_NAME
        names: list[tuple[str, float]] = []
        drawn = accepted = 0
        estimates: list[np.ndarray] = []
        particles = 0
        ess: list[np.ndarray] = []
        round_ = 0
        while len(names) < n and drawn < budget:
            try:
                need = n - len(names)
                p_hat = accepted / drawn if drawn else None
                rejection = method == "rejection" or (method != "smc" and (p_hat is None or p_hat * k >= 1))
                round_seed = int(stream(seed, 16 + round_))
                if rejection:
                    wanted = (
                        max(knobs.REJECTION_PILOT, 2 * need)
                        if p_hat is None
                        else math.ceil(need / max(p_hat, 1 / k) * 1.2) + 16
                    )
                    draws = min(wanted, budget - drawn)
                    kept = rejection_round(self.source, self.alphabet, language, shaping, draws, round_seed)
                    drawn += draws
                    accepted += len(kept)
                    names.extend(kept[:need])
                else:
                    picks = min(need, knobs.SMC_NAMES_PER_GROUP)
                    groups = min(math.ceil(need / picks), (budget - drawn) // (k * picks))
                    if groups == 0:
                        break
                    twist = self.twist(key, language, shaping)
                    result = run_smc(
                        self.source, self.alphabet, language, shaping, twist, groups, k * picks, picks,
                        round_seed,
                    )  # fmt: skip
                    drawn += len(result.estimates) * k * picks  # the groups that ran
                    particles = k * picks
                    names.extend(result.picked[:need])
                    estimates.append(result.estimates)
                    ess.append(result.ess)
                    if result.stopped:  # NAMEGEN_MAX_WORK_SECONDS spent within the round
                        break
            except cancel.OverBudget:  # NAMEGEN_MAX_WORK_SECONDS spent: the names found so far
                break
            round_ += 1
        if estimates:
            report = ConstraintReport(
                "smc",
                float(np.concatenate(estimates).mean()),
                drawn,
                float(np.concatenate(ess).mean()),
                particles,
            )
        else:
            report = ConstraintReport("rejection", accepted / drawn if drawn else 0.0, drawn)
        return Drawn(names, report)

    def next_char_particles(self, language: Language) -> int:
        """`knobs.NEXT_CHAR_PARTICLES`, or the largest power of two (at least
        `knobs.NEXT_CHAR_MIN_PARTICLES`) whose steps fit half the request's budget, counting every
        particle alive to the last position: sized by the budget, never by what ran before, so a
        seeded request repeats. A slow model's estimate is then coarser (its ESS says how much)."""
        per_particle = sum(
            self.source.step_seconds(len(language.prefix) + t + 2) for t in range(language.steps)
        )
        affordable = cancel.budget() / 2 / per_particle if per_particle > 0 else math.inf
        if affordable >= knobs.NEXT_CHAR_PARTICLES:
            return knobs.NEXT_CHAR_PARTICLES
        return max(knobs.NEXT_CHAR_MIN_PARTICLES, 2 ** int(math.log2(max(affordable, 1))))

    def next_char(
        self, key: Hashable, language: Language, shaping: Shaping, seed: int
    ) -> tuple[np.ndarray, ConstraintReport]:
        """p(next character | prefix, name in L): exact from a table's backward pass, else the
        weighted share of first characters among `knobs.NEXT_CHAR_PARTICLES` SMC particles."""
        if self.exact_fits(language):
            backward = self.exact(key, language, shaping)
            return backward.conditional_first(), ConstraintReport("exact", backward.p_constraint, 0)
        particles = self.next_char_particles(language)
        twist = self.twist(key, language, shaping)
        result = run_smc(
            self.source, self.alphabet, language, shaping, twist, 1, particles, 1, int(stream(seed, 15))
        )
        report = ConstraintReport(
            "smc", float(result.estimates[0]), particles, float(result.ess[0]), particles
        )
        return result.first, report
