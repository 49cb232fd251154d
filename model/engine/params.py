"""What one sampling request asks for, and the typed error a model raises for a bad request."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from model.vocab import UnknownCharactersError, Vocab

Loc = tuple[str | int, ...]

# The largest `min_distance`: 2 is checked exactly against the word list's hashes by looking up
# every string one edit from a name (`model.engine.filters`); 3 would need two edits' worth.
MAX_MIN_DISTANCE = 2


class ParameterError(ValueError):
    """A request the model cannot answer as asked. `problems` holds (where, what) pairs: `where`
    names the parameter (and item), e.g. ("prefix",) or ("words", 3)."""

    def __init__(self, loc: str | Loc, message: str, more: list[tuple[Loc, str]] | None = None) -> None:
        self.problems: list[tuple[Loc, str]] = [
            ((loc,) if isinstance(loc, str) else loc, message),
            *(more or []),
        ]
        super().__init__("; ".join(msg for _, msg in self.problems))

    @classmethod
    def of(cls, problems: list[tuple[Loc, str]]) -> ParameterError:
        return cls(*problems[0], more=problems[1:])

    def __reduce__(self) -> tuple:  # pickled whole: a model process raises it for the server
        return (type(self).of, (self.problems,))


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How names are drawn: shaping of each next-character distribution, and the frame of a name.

    `temperature` divides the log-probabilities (< 1 bolder, > 1 wilder; 0 is greedy: the
    likeliest character at every step, the first in alphabet order on a tie); `top_k` keeps the k
    likeliest characters; `top_p` keeps the smallest set of likeliest characters whose
    probability reaches p (nucleus sampling); every name starts with `prefix` (normalised) and
    has at most `max_length` characters.

    Which drawn names an answer keeps (`LanguageModel.sample` resamples the rest, as for novel
    names): `distinct` keeps each name once; `exclude` leaves out those names (normalised);
    `min_distance` k keeps only names at least k edits (Levenshtein) from every name of the
    model's word list and of `exclude` (1: none of them; 2: not one edit away either).

    Built by keyword only, so a new field can never be filled by position. Frozen and hashable:
    the service batches requests by it.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prefix: str = ""
    max_length: int = 32
    distinct: bool = False
    exclude: tuple[str, ...] = ()
    min_distance: int = 0
    # The alphabet these params were checked against (set by `checked`, ignored by == and hash).
    checked_for: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(self.exclude))  # a list from a body: hashable

    @property
    def filters_names(self) -> bool:
        """Whether some drawn names may be left out (and resampled)."""
        return self.distinct or bool(self.exclude) or self.min_distance > 0

    def checked(self, vocab: Vocab) -> SamplingParams:
        """These params with the prefix normalised, or a ParameterError naming what is wrong.
        Params already checked for `vocab` come back as they are (no second look at the prefix)."""
        if self.checked_for == vocab.alphabet:
            return self
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ParameterError(
                "temperature", f"temperature must be finite and >= 0 (0: greedy), got {self.temperature}"
            )
        if self.top_k is not None and not 1 <= self.top_k <= vocab.size:
            raise ParameterError("top_k", f"top_k must be between 1 and the vocabulary size ({vocab.size})")
        if self.top_p is not None and not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise ParameterError("top_p", f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_length < 1:
            raise ParameterError("max_length", f"max_length must be >= 1, got {self.max_length}")
        prefix = vocab.normalise(self.prefix)
        try:
            vocab.check(prefix)
        except UnknownCharactersError as exc:
            raise ParameterError("prefix", str(exc)) from None
        if len(prefix) > self.max_length:
            raise ParameterError(
                "prefix", f"prefix has {len(prefix)} characters, more than max_length ({self.max_length})"
            )
        if not 0 <= self.min_distance <= MAX_MIN_DISTANCE:
            raise ParameterError(
                "min_distance",
                f"min_distance must be between 0 and {MAX_MIN_DISTANCE}, got {self.min_distance}",
            )
        checked = replace(self, prefix=prefix, exclude=_checked_exclude(vocab, self.exclude))
        object.__setattr__(checked, "checked_for", vocab.alphabet)
        return checked


def _checked_exclude(vocab: Vocab, names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` normalised, each once; a ParameterError names every entry outside the alphabet."""
    normalised, problems = [], []
    for i, name in enumerate(names):
        text = vocab.normalise(name)
        try:
            vocab.check(text)
        except UnknownCharactersError as exc:
            problems.append((("exclude", i), str(exc)))
        normalised.append(text)
    if problems:
        raise ParameterError.of(problems)
    return tuple(dict.fromkeys(normalised))


# What a request sets, by name: the API's body maps these fields one to one.
SAMPLING_FIELDS = tuple(f.name for f in fields(SamplingParams) if f.init)
