"""Constraints compile into automata that accept exactly the right names, and a request whose
constraints admit no name is refused before any sampling, naming why."""

from __future__ import annotations

import itertools
import re

import pytest

from model.engine.constraints import automaton
from model.engine.constraints.language import compile_language
from model.engine.constraints.regex import RegexError, compile_regex
from model.engine.constraints.spec import Constraints
from model.engine.params import ParameterError
from model.vocab import Vocab

SMALL = Vocab(".abc")
NAMES = Vocab(".abcdefghijklmnopqrstuvwxyz")


def words(letters: str, longest: int) -> list[str]:
    return ["".join(t) for n in range(longest + 1) for t in itertools.product(letters, repeat=n)]


@pytest.mark.parametrize(
    "pattern",
    [
        "a*b",
        "(ab|c)+",
        "[^a]{2,3}",
        "a?b?c?",
        ".*abc.*",
        "(a|b)*c{1,}",
        "^a.c$",
        "a{2}",
        "(?:ab)*",
        "[a-b]c|b",
        "",
        "a|",
        "(a|)b",
        "(?P<x>a)b*",
        "a{0,2}c+?",
        "[\\-a]b",
        "((a|b)(b|c))*",
    ],
)
def test_regex_accepts_exactly_what_python_re_fullmatches(pattern):
    dfa = compile_regex(pattern, SMALL.alphabet, lowercase=True)
    for word in words("abc", 6):
        assert dfa.accepts(SMALL.encode(word)) == bool(re.fullmatch(pattern, word)), (pattern, word)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(a)\\1", "backreferences are not supported"),
        ("(?P<x>a)(?P=x)", "backreferences are not supported"),
        ("a(?=b)", "look-arounds are not supported"),
        ("(?<!b)a", "look-arounds are not supported"),
        ("(?i)a", "flags"),
        ("a**", "multiple repeat"),
        ("(a", "missing ')'"),
        ("a)", "unbalanced ')'"),
        ("*a", "nothing to repeat"),
        ("a{3,1}", "the maximum is below the minimum"),
        ("a^b", "allowed only at the ends"),
        ("x", "'x' is not in the model's alphabet"),
        ("[ab", "unterminated character class"),
    ],
)
def test_regex_outside_the_supported_syntax_is_refused_saying_why(pattern, says):
    with pytest.raises(RegexError, match=re.escape(says)):
        compile_regex(pattern, SMALL.alphabet, lowercase=True)


def test_regex_letters_are_lowercased_like_the_model_input():
    dfa = compile_regex("[A-C]B", SMALL.alphabet, lowercase=True)
    assert dfa.accepts(SMALL.encode("ab")) and not dfa.accepts(SMALL.encode("ba"))


@pytest.mark.parametrize("word", ["ab", "aab", "aba", "abab", "c", "bcb"])
def test_string_automata_and_their_minimal_forms_match_the_string_predicates(word):
    ids = SMALL.encode(word)
    cases = [
        (automaton.ends_with(ids, 4), lambda w: w.endswith(word)),
        (automaton.contains(ids, 4), lambda w: word in w),
        (automaton.excludes(ids, 4), lambda w: word not in w),
        (automaton.starts_with(ids, 4), lambda w: w.startswith(word)),
    ]
    for dfa, predicate in cases:
        smallest = automaton.minimise(dfa)
        assert smallest.states <= dfa.states
        for w in words("abc", 7):
            assert dfa.accepts(SMALL.encode(w)) == predicate(w) == smallest.accepts(SMALL.encode(w)), (
                word,
                w,
            )


def test_product_is_the_intersection_and_minimising_merges_equal_states():
    both = automaton.product(
        automaton.ends_with(SMALL.encode("ab"), 4), automaton.excludes(SMALL.encode("cc"), 4)
    )
    smallest = automaton.minimise(both)
    for w in words("abc", 7):
        expected = w.endswith("ab") and "cc" not in w
        assert both.accepts(SMALL.encode(w)) == expected == smallest.accepts(SMALL.encode(w))
    # (a|b)* c  and  [ab]*c  are one language: the same minimal automaton size
    one = automaton.minimise(compile_regex("(a|b)*c", SMALL.alphabet, True))
    other = automaton.minimise(compile_regex("[ab]*c", SMALL.alphabet, True))
    assert one.states == other.states == 3  # dead, reading [ab]*, after c


def test_language_length_window_and_prefix():
    language = compile_language(Constraints(length=(3, 4)).checked(NAMES, 32), NAMES, "ab", 32)
    assert (language.lo, language.hi, language.steps) == (3, 4, 2)
    assert language.accepts(NAMES.encode("abc")) and language.accepts(NAMES.encode("abcd"))
    assert not language.accepts(NAMES.encode("ab")) and not language.accepts(NAMES.encode("abcde"))
    assert not language.accepts(NAMES.encode("bac"))


def refusal(constraints: Constraints, prefix: str = "", max_length: int = 32) -> ParameterError:
    with pytest.raises(ParameterError) as caught:
        checked = constraints.checked(NAMES, max_length)
        compile_language(checked, NAMES, prefix, max_length)
    return caught.value


@pytest.mark.parametrize(
    ("constraints", "prefix", "loc", "says"),
    [
        (
            Constraints(length=(5, 3)),
            "",
            ("constraints", "length"),
            "length [5, 3]: the minimum is above the maximum",
        ),
        (Constraints(length=(2, 40)), "", ("constraints", "length"), "above max_length (32)"),
        (Constraints(length=(0, 4)), "", ("constraints", "length"), "at least 1 letter"),
        (Constraints(ends_with="x", regex="[ab]+"), "", ("constraints",), "ends_with 'x' with regex '[ab]+'"),
        (Constraints(regex="c.*"), "ab", ("constraints",), "prefix 'ab' with regex 'c.*'"),
        (
            Constraints(contains=("a" * 33,)),
            "",
            ("constraints", "contains", 0),
            "no name of at most 32 holds it",
        ),
        (Constraints(contains=("abcdef",), length=(2, 4)), "", ("constraints", "contains", 0), "at most 4"),
        (
            Constraints(ends_with="abc", excludes=("bc",)),
            "",
            ("constraints",),
            "ends_with 'abc' with excludes 'bc'",
        ),
        (
            Constraints(contains=("ab", "cd"), length=(1, 3)),
            "",
            ("constraints",),
            "contains 'ab' with contains 'cd'",
        ),
        (Constraints(ends_with="é"), "", ("constraints", "ends_with"), "outside the alphabet"),
        (Constraints(contains=("",)), "", ("constraints", "contains", 0), "must not be empty"),
        (Constraints(regex="(a)\\1"), "", ("constraints", "regex"), "backreferences are not supported"),
        (Constraints(regex="a(?!b)"), "", ("constraints", "regex"), "look-arounds are not supported"),
        (Constraints(excludes=tuple("abcdefghijklmnopqrstuvwxyz")[:16]), "", None, None),
    ],
)
def test_impossible_or_malformed_constraints_are_refused_before_sampling(constraints, prefix, loc, says):
    if loc is None:  # 16 excluded letters still leave names: no error
        constraints.checked(NAMES, 32)
        compile_language(constraints, NAMES, prefix, 32)
        return
    error = refusal(constraints, prefix)
    locs = [where for where, _ in error.problems]
    assert loc in locs, error.problems
    assert says in str(error), str(error)


def test_the_length_window_is_part_of_the_explanation():
    error = refusal(Constraints(ends_with="abcd", contains=("xyz",), length=(1, 6)))
    assert "length [1, 6]" in str(error) and "ends_with 'abcd' with contains 'xyz'" in str(error)


def test_too_many_strings_are_refused():
    error = refusal(Constraints(contains=tuple("abcdefghijklmnopq")))
    assert error.problems[0][0] == ("constraints", "contains") and "more than 16" in str(error)


def test_automata_too_large_to_serve_are_refused_quickly():
    error = refusal(Constraints(regex=".*a.{12}"))  # 2^13 subsets: refused while being built
    assert error.problems[0][0] == ("constraints", "regex") and "too large" in str(error)
    error = refusal(Constraints(regex=".*a.{9}"))  # 1,025 states after minimising
    assert error.problems[0][0] == ("constraints",) and "more than 512" in str(error)
