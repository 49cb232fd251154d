"""The text rule of every name, prefix and word (`model.vocab.Vocab.normalise`), written as the
regular expression the OpenAPI document gives as a `pattern`."""

from __future__ import annotations

import re
from collections.abc import Iterable

from model.engine.language_model import LanguageModel


def pattern(models: Iterable[LanguageModel], at_least_one: bool) -> str:
    """The rule as an ECMA/Python regular expression over the union of the models' input characters."""
    chars = sorted(set("".join(m.vocab.input_characters for m in models)))
    runs: list[list[str]] = []  # contiguous code points as ranges: [A-Za-z], not 52 characters
    for c in chars:
        if runs and ord(c) == ord(runs[-1][-1]) + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    ranges = "".join(re.escape(r[0]) + ("-" + re.escape(r[-1]) if len(r) > 1 else "") for r in runs)
    return rf"^[ \t\n\r]*[{ranges}]{'+' if at_least_one else '*'}[ \t\n\r]*$"
