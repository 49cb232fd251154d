"""Which drawn names an answer keeps (distinct, exclude, min_distance) and greedy sampling,
checked against plain definitions: Levenshtein distance by dynamic programming, argmax walks."""

import itertools

import numpy as np
import pytest

from model.engine.filters import neighbour_hashes, one_edit_neighbours
from model.engine.params import SamplingParams
from model.engine.shaping import cdf_from_log_probs
from model.hashing import word_hashes


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), the textbook dynamic programme."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@pytest.mark.parametrize("name", ["a", "ab", "aba", "cab", "bbbc"])
def test_one_edit_neighbours_are_exactly_the_strings_at_distance_one(name):
    alphabet = "abc"
    everything = {
        "".join(chars)
        for length in range(len(name) - 1, len(name) + 2)
        for chars in itertools.product(alphabet, repeat=length)
    }
    assert set(one_edit_neighbours(name, alphabet)) == {s for s in everything if levenshtein(name, s) == 1}


def test_neighbour_hashes_are_the_hashes_of_the_neighbour_strings():
    """The arithmetic shortcut against hashing each string (the name itself may come back too:
    a substitution by the same letter)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    names = ["a", "emma", "xo", "maximilianalexander", "zz", "bob"]
    hashes, owners = neighbour_hashes(names, alphabet)
    for i, name in enumerate(names):
        expected = set(word_hashes(one_edit_neighbours(name, alphabet)).tolist())
        got = set(hashes[owners == i].tolist()) - {int(word_hashes([name])[0])}
        assert got == expected


def test_temperature_zero_is_all_mass_on_the_first_likeliest_entry():
    log_probs = np.log(np.array([[0.1, 0.5, 0.4], [0.4, 0.2, 0.4], [0.6, 0.3, 0.1]]))
    np.testing.assert_array_equal(
        cdf_from_log_probs(log_probs, temperature=0.0), [[0, 1, 1], [1, 1, 1], [1, 1, 1]]
    )
    np.testing.assert_array_equal(  # a forbidden column is never the likeliest
        cdf_from_log_probs(log_probs, temperature=0.0, forbid=0), [[0, 1, 1], [0, 0, 1], [0, 1, 1]]
    )


def greedy_walk(model, prefix: str = "", max_length: int = 32) -> str:
    """The likeliest character at every step, from /next-char's distribution (no end first)."""
    name = model.normalise(prefix)
    while len(name) < max_length:
        probs = model.next_char(name).probs.copy()
        if not name:
            probs[0] = 0.0
        char = model.vocab.alphabet[int(probs.argmax())]
        if char == ".":
            break
        name += char
    return name


@pytest.mark.parametrize("prefix", ["", "ka", "B"])
def test_temperature_zero_draws_the_greedy_name_every_time_on_both_paths(
    tiny_model, forward_tiny_model, prefix
):
    for model in (tiny_model, forward_tiny_model):  # the table's Python loop and the array loop
        expected = greedy_walk(model, prefix)
        for n, seed in ((3, 1), (200, 2)):
            names = model.sample(n, SamplingParams(temperature=0.0, prefix=prefix), seed).names
            assert [s.name for s in names] == [expected] * n


LEFT = "the one name this temperature, top_k and top_p leave"
DRAWN = "this temperature, top_k and top_p draw"
ONE_NAME = {  # shapings that leave one id a step, with the reason's words for the name and its draws
    "temperature 0": (
        dict(temperature=0.0),
        "the greedy name (temperature 0)",
        "temperature 0 (greedy) draws",
    ),
    "top_k 1": (dict(top_k=1), LEFT, DRAWN),
    "tiny top_p": (dict(top_p=1e-9), LEFT, DRAWN),
}


@pytest.mark.parametrize("shaping", list(ONE_NAME))
@pytest.mark.parametrize("forward", [False, True])
def test_a_shaping_that_leaves_one_name_with_distinct_finds_it_once_and_says_why(
    tiny_model, forward_tiny_model, forward, shaping
):
    model = forward_tiny_model if forward else tiny_model
    shaped, _, draws = ONE_NAME[shaping]
    result = model.sample(3, SamplingParams(distinct=True, **shaped), seed=4)
    assert [s.name for s in result.names] == [greedy_walk(model)]
    assert result.complete is False
    assert result.reason.startswith(f"found 1 distinct names of 3: {draws} one name only")
    assert "rounds of sampling" not in result.reason  # one round: more would draw the name again


def test_distinct_keeps_each_name_once_and_allows_real_names(tiny_model):
    params = SamplingParams(temperature=0.5, max_length=6)
    plain = [s.name for s in tiny_model.sample(60, params, seed=7).names]
    assert len(set(plain)) < len(plain)  # the case distinct is for: repeats
    result = tiny_model.sample(60, SamplingParams(temperature=0.5, max_length=6, distinct=True), seed=7)
    names = [s.name for s in result.names]
    assert result.complete and len(names) == 60 == len(set(names))
    assert any(not s.novel for s in result.names)  # real names stay allowed
    assert names[: len(dict.fromkeys(plain))] != []  # and it starts as the plain draw does
    assert list(dict.fromkeys(plain)) == names[: len(dict.fromkeys(plain))]


def test_exclude_leaves_out_the_names_normalised(tiny_model):
    plain = [
        s.name for s in tiny_model.sample(40, SamplingParams(temperature=0.5, max_length=3), seed=8).names
    ]
    common = max(set(plain), key=plain.count)
    result = tiny_model.sample(
        40, SamplingParams(temperature=0.5, max_length=3, exclude=[f" {common.upper()} "]), seed=8
    )
    names = [s.name for s in result.names]
    assert result.complete and len(names) == 40 and common not in names
    assert len(set(names)) < len(names) - 1  # without distinct, repeats stay
    assert [n for n in plain if n != common] == names[: len(plain) - plain.count(common)]


@pytest.mark.parametrize("min_distance", [1, 2])
def test_min_distance_keeps_names_that_many_edits_from_every_known_and_excluded_name(
    tiny_model, small_word_file, min_distance
):
    words = small_word_file.read_text().split()
    draw = tiny_model.sample(300, SamplingParams(), seed=9).names
    assert min(min(levenshtein(s.name, w) for w in words) for s in draw) < min_distance  # it has work to do
    exclude = [s.name for s in draw[:5]]
    result = tiny_model.sample(50, SamplingParams(min_distance=min_distance, exclude=exclude), seed=10)
    assert result.complete and len(result.names) == 50
    for sample in result.names:
        assert sample.novel
        assert min(levenshtein(sample.name, w) for w in [*words, *exclude]) >= min_distance


def test_min_distance_two_keeps_exactly_the_names_two_edits_away(tiny_model, small_word_file):
    """Against the definition, name by name: the filter drops a name iff a known word is within one edit."""
    from model.engine.filters import NameFilter

    words = small_word_file.read_text().split()
    names = [s.name for s in tiny_model.sample(300, SamplingParams(), seed=12).names]
    wanted = NameFilter.of(
        SamplingParams(min_distance=2).checked(tiny_model.vocab),
        False,
        tiny_model.checkpoint.known_word_hashes.numpy(),
        tiny_model.vocab.alphabet,
    )
    expected = [min(levenshtein(name, w) for w in words) >= 2 for name in names]
    assert wanted.keeps(names) == expected
    assert 0 < sum(expected) < len(expected)


def test_filtered_seeded_answers_repeat_and_differ_by_seed(tiny_model):
    params = SamplingParams(distinct=True, exclude=["ka"], min_distance=2, temperature=0.9)
    a = tiny_model.sample(30, params, seed=3)
    assert a == tiny_model.sample(30, params, seed=3)
    assert a != tiny_model.sample(30, params, seed=4)


def test_an_impossible_filter_is_incomplete_with_a_reason(tiny_model):
    result = tiny_model.sample(
        5, SamplingParams(prefix="ka", max_length=2, min_distance=2), seed=1, max_rounds=3
    )
    assert result.complete is False and len(result.names) < 5
    assert "at least 2 edits from every known name" in result.reason and "in 3 rounds" in result.reason


@pytest.mark.parametrize("shaping", list(ONE_NAME))
@pytest.mark.parametrize("forward", [False, True])  # the exact planner's table, and a forward pass
def test_a_shaping_that_leaves_one_name_draws_it_once_with_constraints(
    tiny_model, forward_tiny_model, forward, shaping
):
    """The one name is the argmax walk; it satisfies the constraints (every name is it) or p_constraint
    is exactly 0, said at once: a forward pass's SMC would spend the budget on particles that die."""
    from model.engine.constraints.spec import Constraints

    model = forward_tiny_model if forward else tiny_model
    shaped, only, _ = ONE_NAME[shaping]
    greedy = greedy_walk(model)
    held = model.sample(3, SamplingParams(**shaped), seed=1, constraints=Constraints(ends_with=greedy[-2:]))
    assert [s.name for s in held.names] == [greedy] * 3 and held.complete
    assert held.constraint.draws == 1 and held.constraint.p_constraint == 1.0  # one path, drawn once
    ends = Constraints(ends_with=greedy[-2:])
    once = model.sample(3, SamplingParams(distinct=True, **shaped), seed=1, constraints=ends)
    assert [s.name for s in once.names] == [greedy] and once.constraint.draws == 1  # one round
    other = next(c for c in model.vocab.alphabet[1:] if c != greedy[-1])  # a last letter it does not have
    missed = model.sample(3, SamplingParams(**shaped), seed=1, constraints=Constraints(ends_with=other))
    assert missed.names == [] and not missed.complete
    assert missed.constraint.draws == 1 and missed.constraint.p_constraint == 0.0
    assert f"{only} does not satisfy the constraints" in missed.reason


def test_a_shaping_with_two_ids_a_step_is_not_one_name(forward_tiny_model):
    """The negative control: top_k 2 leaves many names, so the planner draws as usual."""
    from model.engine.constraints.spec import Constraints

    result = forward_tiny_model.sample(
        5, SamplingParams(top_k=2), seed=1, constraints=Constraints(length=(2, 9))
    )
    assert result.constraint.draws > 1 and len({s.name for s in result.names}) > 1


def test_constrained_names_pass_the_same_filters(tiny_model, small_word_file):
    """distinct, exclude and min_distance hold for constrained names too (one NameFilter)."""
    from model.engine.constraints.spec import Constraints

    words = small_word_file.read_text().split()
    ends = Constraints(ends_with="a", length=(3, 8))
    plain = [
        s.name for s in tiny_model.sample(40, SamplingParams(temperature=0.6), seed=2, constraints=ends).names
    ]
    assert len(set(plain)) < len(plain)
    params = SamplingParams(temperature=0.6, distinct=True, min_distance=2, exclude=[plain[0]])
    result = tiny_model.sample(15, params, seed=2, constraints=ends)
    names = [s.name for s in result.names]
    assert result.complete and len(names) == 15 == len(set(names))
    assert all(name.endswith("a") and 3 <= len(name) <= 8 for name in names)
    assert all(min(levenshtein(name, w) for w in [*words, plain[0]]) >= 2 for name in names)
