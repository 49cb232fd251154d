"""The text rule of every name, prefix and word, checked before a model sees the text.

A text is letters of the model's alphabet (uppercase ASCII lowercased when the alphabet has no
uppercase), optionally surrounded by spaces, tabs or newlines. Exactly that: Python's own `strip()`
would also drop U+001C-U+001F and other Unicode spaces, and `lower()` would turn the Kelvin sign
into a 'k', so a text the OpenAPI `pattern` refuses could be served. `pattern()` writes the rule
as the regular expression the OpenAPI document gives.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from model.engine.language_model import LanguageModel
from model.engine.params import Loc, ParameterError
from model.vocab import BOUNDARY

SPACES = " \t\n\r"


def letters(model: LanguageModel) -> str:
    """Every character the model accepts in input: its alphabet, and A-Z when it lowercases."""
    alphabet = model.vocab.alphabet.replace(BOUNDARY, "")
    if model.vocab.lowercases_input:
        alphabet += "".join(c for c in string.ascii_uppercase if c.lower() in alphabet)
    return alphabet


def clean(model: LanguageModel, text: str, loc: str | Loc) -> str:
    """`text` stripped of surrounding spaces, or a ParameterError at `loc` naming each bad character."""
    text = text.strip(SPACES)
    allowed = letters(model)
    bad = list(dict.fromkeys(c for c in text if c not in allowed))
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ParameterError(loc, f"{text!r} contains characters outside the alphabet: {shown}")
    return text


def pattern(models: Iterable[LanguageModel], at_least_one: bool) -> str:
    """The rule as an ECMA/Python regular expression over the union of the models' letters."""
    chars = sorted(set("".join(letters(m) for m in models)))
    runs: list[list[str]] = []  # contiguous code points as ranges: [A-Za-z], not 52 characters
    for c in chars:
        if runs and ord(c) == ord(runs[-1][-1]) + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    ranges = "".join(re.escape(r[0]) + ("-" + re.escape(r[-1]) if len(r) > 1 else "") for r in runs)
    return rf"^[ \t\n\r]*[{ranges}]{'+' if at_least_one else '*'}[ \t\n\r]*$"
