"""Which drawn names an answer keeps: novel, distinct, not excluded, far enough from known names.

`LanguageModel.sample` draws rounds of names and keeps those a `NameFilter` accepts until it has
`n` (one mechanism for `novel`, `distinct`, `exclude` and `min_distance`).

The word list itself is not in a checkpoint, only the sorted 64-bit hashes of its words
(`model.checkpoint`), so "at least 2 edits from every known name" is checked from the other side:
every string one edit (a deletion, a substitution or an insertion of an alphabet character) from
a drawn name is hashed and looked up among the known and excluded names' hashes. For a name of
L characters and an alphabet of A that is L + L(A - 1) + (L + 1)A strings (about 390 for a
7-letter name and a-z). `model.hashing`'s hash is a sum over positions before its final mix, so
`neighbour_hashes` computes every neighbour's hash from prefix and suffix sums of the name's own
terms, as array operations, without building one string: exact up to 64-bit hash collisions,
with no index to build or store (`python -m bench.filters`: the 750k neighbours of 2,000 names in
about 20 ms; 1,000 names at min_distance 2 from the MLP in about 160 ms, 2.5 ms plain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.engine.params import SamplingParams
from model.hashing import contains, position_keys, splitmix64, word_hashes


def one_edit_neighbours(name: str, alphabet: str) -> list[str]:
    """Every string one edit from `name` over `alphabet` (repeats possible, `name` itself not)."""
    out = [name[:i] + name[i + 1 :] for i in range(len(name))]
    out += [name[:i] + c + name[i + 1 :] for i in range(len(name)) for c in alphabet if c != name[i]]
    out += [name[:i] + c + name[i:] for i in range(len(name) + 1) for c in alphabet]
    return out


def neighbour_hashes(names: list[str], alphabet: str) -> tuple[np.ndarray, np.ndarray]:
    """The hashes (`model.hashing.word_hashes`) of every string one edit from each name, and the
    index of the name each belongs to: `one_edit_neighbours`' strings, hashed by arithmetic."""
    width = max(map(len, names))
    codes = np.array(names, dtype=f"U{width}").view(np.uint32).reshape(len(names), width).astype(np.uint64)
    keys = position_keys(width + 1)  # an insertion makes a name one longer
    letters = np.frombuffer(alphabet.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    lengths = np.array([len(name) for name in names])
    zero = np.zeros((len(names), 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        before = np.hstack([zero, np.cumsum(codes * keys[:width], axis=1)])  # [i]: terms of positions < i
        total = before[:, -1:]
        after = total - before  # [i]: terms of positions >= i, each at its own position
        # [i]: positions > i, each moved one to the left (deletion at i) / >= i moved right (insertion)
        moved_left = codes[:, 1:] * keys[: width - 1]
        left = np.hstack([np.cumsum(moved_left[:, ::-1], axis=1)[:, ::-1], zero])
        right = np.hstack([np.cumsum((codes * keys[1:])[:, ::-1], axis=1)[:, ::-1], zero])
        deletions = before[:, :width] + left
        letter_terms = letters[None, None, :] * keys[None, : width + 1, None]
        substitutions = (before[:, :width] + after[:, 1:])[:, :, None] + letter_terms[:, :width]
        insertions = (before + right)[:, :, None] + letter_terms
    positions = np.arange(width + 1)
    within = positions[None, :width] < lengths[:, None]  # deletions and substitutions: i < L
    inside = positions[None, :] <= lengths[:, None]  # insertions: i <= L
    owners = np.arange(len(names))
    dotted = np.concatenate([
        deletions[within],
        substitutions[within].ravel(),
        insertions[inside].ravel(),
    ])  # fmt: skip
    owner = np.concatenate([
        np.broadcast_to(owners[:, None], deletions.shape)[within],
        np.repeat(np.broadcast_to(owners[:, None], deletions.shape)[within], len(letters)),
        np.repeat(np.broadcast_to(owners[:, None], insertions.shape[:2])[inside], len(letters)),
    ])  # fmt: skip
    return splitmix64(dotted).view(np.int64), owner


@dataclass(frozen=True)
class NameFilter:
    """The test a drawn name passes to be kept (distinctness within an answer is the caller's).

    `blocked` holds the sorted hashes of the names no kept name may equal (the known names when
    novelty is asked for, and the excluded names); with `far`, no kept name may be one edit from
    one of them either.
    """

    novel: bool
    distinct: bool
    exclude: bool
    min_distance: int
    blocked: np.ndarray  # int64, sorted
    alphabet: str

    @classmethod
    def of(cls, params: SamplingParams, novel: bool, known_hashes: np.ndarray, alphabet: str) -> NameFilter:
        """The filter `params` (checked) and `novel` ask for; `known_hashes` sorted int64."""
        excluded = word_hashes(list(params.exclude)) if params.exclude else np.zeros(0, dtype=np.int64)
        avoid_known = novel or params.min_distance > 0
        blocked = np.union1d(known_hashes, excluded) if avoid_known else np.unique(excluded)
        return cls(
            novel=avoid_known,
            distinct=novel or params.distinct,
            exclude=bool(params.exclude),
            min_distance=params.min_distance,
            blocked=blocked,
            alphabet=alphabet,
        )

    def keeps(self, names: list[str]) -> list[bool]:
        """Whether each name passes (in bulk: one hashing pass for all their neighbours)."""
        if not len(self.blocked) or not names:
            return [True] * len(names)
        ok = ~contains(self.blocked, word_hashes(names))
        if self.min_distance >= 2:
            candidates = np.flatnonzero(ok)
            if len(candidates):
                hashes, owners = neighbour_hashes([names[i] for i in candidates.tolist()], self.alphabet)
                ok[candidates[owners[contains(self.blocked, hashes)]]] = False
        return ok.tolist()

    def describe(self) -> str:
        """What a kept name is, for the reason of an incomplete answer: "distinct novel names ..."."""
        words = [word for word, on in (("distinct", self.distinct), ("novel", self.novel)) if on]
        text = " ".join([*words, "names"])
        if self.min_distance >= 2:
            text += f" at least {self.min_distance} edits from every known" + (
                " or excluded name" if self.exclude else " name"
            )
        elif self.exclude:
            text += " outside exclude"
        return text
