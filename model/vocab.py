"""The character vocabulary: alphabet <-> ids, with '.' (id 0) starting and ending every name.

The text rule of every name, prefix and word a model reads lives here, once: surrounding spaces,
tabs and newlines are stripped (only those: Python's own `strip()` would also drop U+001C-U+001F
and other Unicode spaces), ASCII A-Z is lowercased when the alphabet has no uppercase letters (only
those: `lower()` would turn the Kelvin sign into a 'k'), and every other character must be in the
alphabet.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BOUNDARY = "."
BOUNDARY_ID = 0  # the boundary's id in every vocabulary: it sorts first
SPACES = " \t\n\r"  # the surrounding whitespace input may carry
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class UnknownCharactersError(ValueError):
    """Raised when text holds characters outside the alphabet; names every one of them."""

    def __init__(self, text: str, unknown: Sequence[str]) -> None:
        self.text = text
        self.unknown = list(unknown)
        shown = ", ".join(repr(c) for c in self.unknown)
        super().__init__(f"{text!r} contains characters outside the alphabet: {shown}")


@dataclass(frozen=True)
class Vocab:
    """A sorted alphabet with the boundary token '.' at id 0."""

    alphabet: str
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    lowercases_input: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.alphabet.startswith(BOUNDARY) or self.alphabet.count(BOUNDARY) != 1:
            raise ValueError(f"alphabet must start with {BOUNDARY!r} and hold it once")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("alphabet holds a character twice")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.alphabet)})
        # input is lowercased exactly when the alphabet has no uppercase letters
        object.__setattr__(self, "lowercases_input", not any(c.isupper() for c in self.alphabet))

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocab:
        """Build the alphabet from every character of `words`, sorted, after the boundary."""
        chars = set()
        for word in words:
            if BOUNDARY in word:
                raise ValueError(f"word {word!r} contains the boundary token {BOUNDARY!r}")
            chars.update(word)
        return cls(BOUNDARY + "".join(sorted(chars)))

    @property
    def size(self) -> int:
        return len(self.alphabet)

    @property
    def input_characters(self) -> str:
        """Every character input may hold: the alphabet, and A-Z where input is lowercased."""
        letters = self.alphabet.replace(BOUNDARY, "")
        if self.lowercases_input:
            letters += "".join(c for c in string.ascii_uppercase if c.lower() in letters)
        return letters

    def normalise(self, text: str) -> str:
        """Strip surrounding spaces, tabs and newlines; lowercase A-Z when the alphabet has no
        uppercase letters."""
        text = text.strip(SPACES)
        return text.translate(_ASCII_LOWER) if self.lowercases_input else text

    def check(self, text: str) -> None:
        """Raise UnknownCharactersError naming each character of `text` outside the alphabet.

        The boundary token is not a character of any name, so it counts as unknown too.
        """
        unknown = dict.fromkeys(c for c in text if c not in self._index or c == BOUNDARY)
        if unknown:
            raise UnknownCharactersError(text, list(unknown))

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `text` (already normalised), checked against the alphabet."""
        self.check(text)
        return [self._index[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)
