"""64-bit hashing as numpy array operations: the SplitMix64 finaliser and word hashes built on it.

`splitmix64` mixes uint64 counters into well-spread 64-bit values (the sampler's random draws).
`word_hashes` gives every word of a list a stable 64-bit hash in a few array operations, however
many words: the code points, zero-padded to the longest word, dotted with one pseudo-random odd
64-bit key per position (a multilinear hash, modulo 2^64), then mixed by `splitmix64`. The
checkpoint stores these hashes of its word list, so novelty is a sorted-array lookup.
`word_hash` is the same hash of one word in plain Python integers: for a few words it beats
setting up the arrays (about 3 us a word against about 30 us a call).
"""

from __future__ import annotations

import operator
from functools import cache

import numpy as np

_MIX1_INT, _MIX2_INT = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # SplitMix64's multipliers
_MASK = (1 << 64) - 1  # wrapping uint64 arithmetic for Python ints
GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(_MIX1_INT), np.uint64(_MIX2_INT)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_KEY_STREAM = np.uint64(0x6E616D6567656E00)  # "namegen\0": the position keys' own stream


def splitmix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@cache
def position_keys(width: int) -> np.ndarray:
    """One odd pseudo-random key per character position (odd: a position never drops out)."""
    positions = np.arange(1, width + 1, dtype=np.uint64)
    return splitmix64(_KEY_STREAM + positions * GOLDEN_GAMMA) | np.uint64(1)


@cache
def _position_keys_int(width: int) -> tuple[int, ...]:
    return tuple(position_keys(width).tolist())


def _splitmix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1_INT) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2_INT) & _MASK
    return z ^ (z >> 31)


def word_hash(word: str) -> int:
    """`word_hashes([word])[0]`, computed with Python integers."""
    dotted = sum(map(operator.mul, map(ord, word), _position_keys_int(len(word)))) & _MASK
    value = _splitmix64_int(dotted)
    return value - (1 << 64) if value >> 63 else value


def word_hashes(words: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of `words` as int64[len(words)], equal for equal strings."""
    width = max(map(len, words), default=0)
    if width == 0:
        return splitmix64(np.zeros(len(words), dtype=np.uint64)).view(np.int64)
    code_points = np.array(words, dtype=f"U{width}").view(np.uint32).reshape(len(words), width)
    with np.errstate(over="ignore"):
        dotted = code_points.astype(np.uint64) @ position_keys(width)
    return splitmix64(dotted).view(np.int64)


def contains_one(sorted_hashes: np.ndarray, value: int) -> bool:
    """Whether `value` is in `sorted_hashes` (int64, ascending): `contains` for one hash."""
    at = int(sorted_hashes.searchsorted(value))
    return at < len(sorted_hashes) and int(sorted_hashes[at]) == value


def contains(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """bool[len(hashes)]: whether each hash is in `sorted_hashes` (int64, ascending)."""
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    at = np.searchsorted(sorted_hashes, hashes).clip(max=len(sorted_hashes) - 1)
    return sorted_hashes[at] == hashes
