"""What a constrained request asks for: the `Constraints` object and its validation."""

from __future__ import annotations

from dataclasses import dataclass

from model.engine.params import Loc, ParameterError
from model.vocab import UnknownCharactersError, Vocab

MAX_ITEMS = 16  # strings per `contains` / `excludes` list
MAX_STRING = 64  # letters per ends_with / contains / excludes string
MAX_REGEX = 256  # characters of a regex


@dataclass(frozen=True)
class Constraints:
    """Every returned name ends with `ends_with`, holds each string of `contains`, none of
    `excludes`, has between length[0] and length[1] letters (inclusive) and fully matches `regex`.
    Frozen and hashable: compiled languages are cached by it."""

    ends_with: str | None = None
    contains: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    length: tuple[int, int] | None = None
    regex: str | None = None

    @property
    def empty(self) -> bool:
        """True when nothing is asked (the unconstrained sampler answers)."""
        return self == Constraints()

    def checked(self, vocab: Vocab, max_length: int) -> Constraints:
        """These constraints with every string normalised, or a ParameterError at
        ("constraints", field[, index]) naming each problem."""
        problems: list[tuple[Loc, str]] = []

        def text(value: str, loc: Loc, what: str) -> str:
            value = vocab.normalise(value)
            if not value:
                problems.append((loc, f"{what} must not be empty"))
            elif len(value) > MAX_STRING:
                problems.append((loc, f"{what} has {len(value)} letters, more than {MAX_STRING}"))
            else:
                try:
                    vocab.check(value)
                except UnknownCharactersError as exc:
                    problems.append((loc, f"{what}: {exc}"))
            return value

        ends = (
            None
            if self.ends_with is None
            else text(self.ends_with, ("constraints", "ends_with"), "ends_with")
        )
        lists = {}
        for field in ("contains", "excludes"):
            items = getattr(self, field)
            if len(items) > MAX_ITEMS:
                problems.append(
                    (("constraints", field), f"{field} holds {len(items)} strings, more than {MAX_ITEMS}")
                )
            lists[field] = tuple(
                text(item, ("constraints", field, i), f"{field}[{i}]") for i, item in enumerate(items)
            )
        if self.length is not None:
            lo, hi = self.length
            if lo < 1:
                problems.append(
                    (("constraints", "length"), f"length [{lo}, {hi}]: a name has at least 1 letter")
                )
            if lo > hi:
                problems.append(
                    (("constraints", "length"), f"length [{lo}, {hi}]: the minimum is above the maximum")
                )
            if hi > max_length:
                problems.append(
                    (
                        ("constraints", "length"),
                        f"length [{lo}, {hi}]: the maximum is above max_length ({max_length})",
                    )
                )
        longest = min(max_length, self.length[1]) if self.length is not None else max_length
        for i, item in enumerate(lists["contains"]):
            if len(item) > longest:
                problems.append(
                    (
                        ("constraints", "contains", i),
                        f"contains {item!r} has {len(item)} letters: no name of at most {longest} holds it",
                    )
                )
        if ends is not None and len(ends) > longest:
            problems.append(
                (
                    ("constraints", "ends_with"),
                    f"ends_with {ends!r} has {len(ends)} letters: no name of at most {longest} ends with it",
                )
            )
        if self.regex is not None and len(self.regex) > MAX_REGEX:
            problems.append(
                (("constraints", "regex"), f"regex has {len(self.regex)} characters, more than {MAX_REGEX}")
            )
        if problems:
            raise ParameterError.of(problems)
        return Constraints(ends, lists["contains"], lists["excludes"], self.length, self.regex)
