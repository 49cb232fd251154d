import itertools
import string

import numpy as np

from model.hashing import contains, contains_one, splitmix64, word_hash, word_hashes

MASK = (1 << 64) - 1


def reference_splitmix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def reference_word_hash(word: str) -> int:
    """The documented hash, one Python integer at a time."""
    dotted = 0
    for position, char in enumerate(word, start=1):
        key = reference_splitmix64((0x6E616D6567656E00 + position * 0x9E3779B97F4A7C15) & MASK) | 1
        dotted = (dotted + ord(char) * key) & MASK
    value = reference_splitmix64(dotted)
    return value - (1 << 64) if value >= 1 << 63 else value


def test_splitmix64_matches_python_integers():
    values = [0, 1, 2**63, MASK, 0x123456789ABCDEF]
    got = splitmix64(np.array(values, dtype=np.uint64)).tolist()
    assert got == [reference_splitmix64(v) for v in values]


def test_word_hashes_match_the_documented_formula():
    words = ["", "a", "emma", "ab", "ba", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "zoë", "ángel", "李"]
    assert word_hashes(words).tolist() == [reference_word_hash(w) for w in words]
    assert [word_hash(w) for w in words] == [reference_word_hash(w) for w in words]


def test_a_words_hash_does_not_depend_on_its_batch():
    alone = [word_hashes([w])[0] for w in ["al", "alexandra", ""]]
    together = word_hashes(["al", "alexandra", ""]).tolist()
    assert together == alone


def test_no_collisions_among_all_short_strings():
    words = ["".join(p) for n in (1, 2, 3) for p in itertools.product(string.ascii_lowercase, repeat=n)]
    assert len(set(word_hashes(words).tolist())) == len(words) == 26 + 26**2 + 26**3


def test_contains():
    known = np.unique(word_hashes(["anna", "bob", "carl"]))
    asked = word_hashes(["bob", "bobby", "anna", "", "zed"])
    assert contains(known, asked).tolist() == [True, False, True, False, False]
    assert contains(known[:0], asked).tolist() == [False] * 5
    assert [contains_one(known, int(h)) for h in asked] == [True, False, True, False, False]
    assert not contains_one(known[:0], int(asked[0]))
