"""bench.quality's figures on tiny hand-made inputs whose answers are worked out by hand (or, for
far-novelty, by a plain edit-distance computation)."""

import math
import random

import numpy as np
import pytest

from bench import quality
from tests.model.test_filters import levenshtein


def test_length_total_variation_of_known_distributions():
    # lengths {2: 1/2, 3: 1/2} against {2: 3/4, 4: 1/4}: (1/4 + 1/2 + 1/4) / 2
    assert quality.length_tv(["ab", "abc"], ["abcd", "ab", "xy", "ab"]) == pytest.approx(0.5)
    assert quality.length_tv(["ab", "cd"], ["xyz"]) == pytest.approx(1.0)  # disjoint lengths
    assert quality.length_tv(["ab", "abc"], ["cba", "xy"]) == 0.0


def test_end_bigram_jensen_shannon():
    assert quality.end_bigrams(["a", "bob", "rob"]) == {".a": 1, "ob": 2}
    assert quality.end_bigram_js(["anna", "bob"], ["bob", "anna"]) == 0.0
    assert quality.end_bigram_js(["anna"], ["bob"]) == pytest.approx(math.log(2))  # disjoint
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4): KL(p||m) = ln(4/3)/2, KL(q||m) = ln(4/3)
    assert quality.end_bigram_js(["ab", "xy"], ["cab"]) == pytest.approx(0.75 * math.log(4 / 3))


def test_ngrams_and_features():
    assert quality.ngrams("ab") == [".", "a", "b", ".", ".a", "ab", "b.", ".ab", "ab."]
    assert quality.ngram_vocabulary(["ab", "b"], size=4) == [".", "b", "b.", ".a"]
    x = quality.features(["ab", "qq", "aa"], ["a", "b", "zz"])
    h = 1 / math.sqrt(2)
    np.testing.assert_allclose(x, [[h, h, 0], [0, 0, 0], [1, 0, 0]])


def test_frechet_of_identical_sets_is_zero_and_of_known_gaussians_is_their_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    assert quality.frechet(x, x.copy()) == pytest.approx(0, abs=1e-9)
    # a shifted copy: same covariance, so only |shift|^2 remains
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    assert quality.frechet(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    # one dimension: x = {0, 2} (mean 1, variance 2), y = {3, 7} (mean 5, variance 8):
    # (1 - 5)^2 + (sqrt 2 - sqrt 8)^2 = 16 + 2
    assert quality.frechet(np.array([[0.0], [2.0]]), np.array([[3.0], [7.0]])) == pytest.approx(18)


def test_frechet_interval_is_seeded_and_separates_distant_sets():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 10  # distance about 300
    one = quality.frechet_interval(x, y, resamples=50, seed=7)
    assert one == quality.frechet_interval(x, y, resamples=50, seed=7)
    assert one.value == quality.frechet(x, y)
    assert 200 < one.low < one.value < one.high < 400
    assert one.value - one.low == pytest.approx(one.high - one.value)  # +- 1.96 bootstrap deviations
    near = quality.frechet_interval(x, rng.normal(size=(200, 3)), resamples=50, seed=7)
    assert near.low < near.high < 1  # same distribution: small
    same = quality.frechet_interval(x, x.copy(), resamples=50, seed=7)
    assert same.low == 0 < same.high < 1  # clipped at 0


def test_precision_recall_by_hand():
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    # k = 1: real radii 1, 1, 1, 8; fake radii 2, 2, .5, .5, .5, .5
    fake = np.array([[0.5], [2.5], [6.0], [6.5], [19.0], [19.5]])
    # 19 and 19.5 are more than 8 from 10; 10 is more than .5 from every fake point
    assert quality.precision_recall(real, fake, k=1) == (pytest.approx(4 / 6), pytest.approx(3 / 4))
    # k = 3: real radii 3, 2, 2, 3, 99; 7 is inside 100's ball, 250 in none;
    # fake radii (third nearest) are at least 148.5 from 1.5: every real point is covered
    real = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])
    fake = np.array([[1.5], [3.5], [7.0], [150.0], [250.0]])
    assert quality.precision_recall(real, fake) == (pytest.approx(4 / 5), 1.0)
    assert quality.precision_recall(real, real.copy()) == (1.0, 1.0)


def test_far_novel_names_are_at_least_two_edits_from_every_known_name():
    known = ["anna", "bob"]
    names = ["anna", "ana", "annb", "annas", "bobby", "xyz", "bo", "", "nan"]
    assert quality.far_novel(names, known) == [False, False, False, False, True, True, False, True, True]
    assert quality.far_novel([""], ["a"]) == [False]  # one insertion from "a"
    rng = random.Random(5)
    known = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 5))) for _ in range(60)]
    names = ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 6))) for _ in range(300)]
    expected = [min(levenshtein(n, k) for k in known) >= 2 for n in names]
    assert quality.far_novel(names, known) == expected
    assert 0 < sum(expected) < len(expected)


def test_measure_of_real_names_against_themselves():
    real = ["anna", "bob", "clara", "dan", "eve", "frida", "gus", "hanna", "ida", "jon"] * 3
    vocabulary = quality.ngram_vocabulary(real, size=20)
    q = quality.measure(real, real, known=real, vocabulary=vocabulary, resamples=20)
    assert (q.count, q.far_novel, q.length_tv, q.end_js, q.precision, q.recall) == (30, 0, 0, 0, 1, 1)
    assert q.three_letters == pytest.approx(6 / 10)
    assert q.frechet.value == pytest.approx(0, abs=1e-9)
    # every n-gram of the real names is an axis: "zzzzzzzz" has only the two "." 1-grams
    vocabulary = quality.ngram_vocabulary(real, size=200)
    other = quality.measure(["zzzzzzzz"] * 30, real, known=real, vocabulary=vocabulary, resamples=20)
    assert other.far_novel == 1 and other.length_tv == 1 and other.end_js == pytest.approx(math.log(2))
    assert other.frechet.low > 0.5
    # a collapsed sample: its one point lies in some real name's wide ball (precision 1), but its
    # own balls have radius 0 and hold no real name (recall 0)
    assert (other.precision, other.recall) == (1, 0)
