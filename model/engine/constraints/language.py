"""Compiling a request's constraints and prefix into one automaton and a length window.

The `Language` of a request is the set of names (prefix included) its `Dfa` accepts with a
length in [lo, hi]. Emptiness is decided here, before any sampling, and explained: the smallest
set of constraints (one, then two, then all) that admits no name is named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from itertools import combinations

import numpy as np

from model.engine.constraints import automaton
from model.engine.constraints.automaton import Dfa
from model.engine.constraints.regex import RegexError, compile_regex
from model.engine.constraints.spec import Constraints
from model.engine.params import ParameterError
from model.vocab import Vocab

MAX_STATES = 512  # states of the combined automaton: beyond, a request is refused as too complex


@dataclass(frozen=True)
class Language:
    """Names accepted by `dfa` with lo <= length <= hi; `prefix` ids are fed to it first.

    `state` is the automaton's state after the prefix; `viable[n, s]` whether from state s after n
    letters some accepted name of a length in [lo, hi] can still be reached."""

    dfa: Dfa
    lo: int
    hi: int
    prefix: tuple[int, ...]
    state: int
    viable: np.ndarray

    def accepts(self, ids: list[int]) -> bool:
        return self.lo <= len(ids) <= self.hi and self.dfa.accepts(ids)

    @property
    def steps(self) -> int:
        """Letters drawn after the prefix, at most."""
        return self.hi - len(self.prefix)


def compile_language(constraints: Constraints, vocab: Vocab, prefix: str, max_length: int) -> Language:
    """The Language of checked `constraints` with the (normalised) `prefix`, or a ParameterError
    at ("constraints",) saying which constraints admit no name together."""
    size = vocab.size
    items: list[tuple[str, Dfa]] = []
    prefix_ids = vocab.encode(prefix)
    if prefix_ids:
        items.append((f"prefix {prefix!r}", automaton.starts_with(prefix_ids, size)))
    if constraints.ends_with is not None:
        items.append(
            (
                f"ends_with {constraints.ends_with!r}",
                automaton.ends_with(vocab.encode(constraints.ends_with), size),
            )
        )
    for word in constraints.contains:
        items.append((f"contains {word!r}", automaton.contains(vocab.encode(word), size)))
    for word in constraints.excludes:
        items.append((f"excludes {word!r}", automaton.excludes(vocab.encode(word), size)))
    if constraints.regex is not None:
        try:
            regex_dfa = compile_regex(constraints.regex, vocab.alphabet, vocab.lowercases_input)
        except RegexError as exc:
            raise ParameterError(("constraints", "regex"), str(exc)) from None
        items.append((f"regex {constraints.regex!r}", regex_dfa))
    lo, hi = constraints.length if constraints.length is not None else (1, max_length)
    lo = max(lo, 1)
    window = (
        f"length [{lo}, {hi}]"
        if constraints.length is not None
        else f"at most max_length ({max_length}) letters"
    )
    dfa = _combine([d for _, d in items], size)
    viable = automaton.reachable_lengths(dfa, lo, hi)
    if not viable[0, dfa.start]:
        raise ParameterError(("constraints",), _why_empty(items, lo, hi, window, size))
    full = _cap(dfa)
    return Language(
        full, lo, hi, tuple(prefix_ids), full.run(prefix_ids), automaton.reachable_lengths(full, lo, hi)
    )


def _combine(dfas: list[Dfa], size: int) -> Dfa:
    if not dfas:
        return automaton.anything(size)
    try:
        return automaton.minimise(reduce(lambda a, b: automaton.minimise(automaton.product(a, b)), dfas))
    except automaton.AutomatonTooLarge as exc:
        raise ParameterError(
            ("constraints",), f"the constraints combine into an automaton of {exc}: use fewer or simpler ones"
        ) from None


def _cap(dfa: Dfa) -> Dfa:
    if dfa.states > MAX_STATES:
        raise ParameterError(
            ("constraints",),
            f"the constraints combine into an automaton of {dfa.states} states, more than {MAX_STATES}: "
            "use fewer or simpler constraints",
        )
    return dfa


def _why_empty(items: list[tuple[str, Dfa]], lo: int, hi: int, window: str, size: int) -> str:
    """A message naming the fewest constraints that admit no name together."""
    for count in (1, 2, 3):
        for group in combinations(items, count):
            dfa = _combine([d for _, d in group], size)
            if not automaton.reachable_lengths(dfa, lo, hi)[0, dfa.start]:
                names = " with ".join(label for label, _ in group)
                return f"no name satisfies {names} ({window})"
    if not items:
        return f"no name has {window}"
    return "no name satisfies " + " with ".join(label for label, _ in items) + f" ({window})"
