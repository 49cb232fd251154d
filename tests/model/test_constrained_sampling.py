"""Constrained sampling on the committed checkpoints: table models draw from the exact conditional
(checked against every string of a small language, scored by the model's own word losses), a
step-by-step masking sampler does not (the negative control), every returned name satisfies
random constraint sets, budgets end in complete: false with a reason, and seeds repeat."""

from __future__ import annotations

import random
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from model.engine.constraints.exact import shaped_probs
from model.engine.constraints.spec import Constraints
from model.engine.language_model import LanguageModel
from model.engine.params import ParameterError, SamplingParams
from model.engine.sampler import uniforms
from model.engine.shaping import Shaping
from tests.model.constraint_stats import chi_square_p, conditional_probs, enumerate_language

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
JA_N = Constraints(ends_with="n", length=(4, 5))  # with prefix "ja": 702 strings
DRAWS = 4000


@pytest.fixture(scope="module")
def models() -> dict[str, LanguageModel]:
    return {
        name: LanguageModel.from_checkpoint(WEIGHTS / f"names-{name}.safetensors", device="cpu")
        for name in ("bigram", "mlp", "gru")
    }


def satisfies(name: str, c: Constraints, prefix: str = "", max_length: int = 32) -> bool:
    """The constraints checked directly on the string (independently of the automata)."""
    lo, hi = c.length if c.length is not None else (1, max_length)
    return (
        name.startswith(prefix)
        and lo <= len(name) <= hi
        and (c.ends_with is None or name.endswith(c.ends_with))
        and all(s in name for s in c.contains)
        and not any(s in name for s in c.excludes)
        and (c.regex is None or re.fullmatch(c.regex, name) is not None)
    )


@pytest.mark.parametrize("family", ["bigram", "mlp"])
def test_table_models_draw_the_exact_conditional_of_a_small_language(models, family):
    model = models[family]
    words = enumerate_language(model.vocab.alphabet, "ja", (1, 2), "n")
    assert len(words) == 702
    probs, total = conditional_probs(model, words, "ja")
    result = model.sample(DRAWS, SamplingParams(prefix="ja"), seed=11, constraints=JA_N)
    assert result.complete and result.constraint.method == "exact"
    assert result.constraint.p_constraint == pytest.approx(total, abs=1e-6)
    names = [s.name for s in result.names]
    assert all(satisfies(name, JA_N, "ja") for name in names)
    assert chi_square_p(words, probs, names) > 0.01
    # each name's loss is the model's own word loss, as for unconstrained names
    scores = {s.word: s.loss for s in model.word_losses(names[:20])}
    assert [s.loss for s in result.names[:20]] == pytest.approx([scores[n] for n in names[:20]], abs=1e-9)


def masked_names(model: LanguageModel, constraints: Constraints, prefix: str, n: int, seed: int) -> list[str]:
    """The negative control: step-by-step masking, as grammar-constrained decoders do. At each step
    forbid the letters after which no accepted name is reachable (and the end unless the name is
    accepted now), renormalise, draw with the same counter-based uniforms."""
    params = SamplingParams(prefix=prefix)
    language = model.language(params, constraints)
    shaping = Shaping.of(params)
    source, dfa = model.source, language.dfa
    names = []
    seeds, rows = np.full(n, seed, dtype=np.uint64), np.arange(n, dtype=np.uint64)
    draws = uniforms(seeds[:, None], rows[:, None], np.arange(language.steps + 1, dtype=np.uint64)[None, :])
    for row in range(n):
        state, letters, code = language.state, list(language.prefix), source.start(list(language.prefix))
        for t in range(language.steps + 1):
            p = shaped_probs(source.log_probs(code), shaping, first_step=t == 0)[0]
            length = len(letters)
            allowed = np.array(
                [dfa.accepting[state] and language.lo <= length <= language.hi]
                + [
                    length < language.hi and language.viable[length + 1, dfa.delta[state, j]]
                    for j in range(1, len(p))
                ]
            )
            weights = p * allowed
            j = int(np.searchsorted(np.cumsum(weights) / weights.sum(), draws[row, t]))
            if j == 0:
                break
            letters.append(j)
            state = int(dfa.delta[state, j])
            code = source.advance(code, np.array([j]))
        names.append(model.vocab.decode(letters))
    return names


def test_negative_control_masking_fails_the_same_test(models):
    model = models["mlp"]
    words = enumerate_language(model.vocab.alphabet, "ja", (1, 2), "n")
    probs, _ = conditional_probs(model, words, "ja")
    names = masked_names(model, JA_N, "ja", DRAWS, seed=11)
    assert all(satisfies(name, JA_N, "ja") for name in names)  # masking keeps the constraint...
    assert chi_square_p(words, probs, names) < 1e-6  # ...but not the distribution
    # and for "ends with -son" it runs long, as measured in the research note
    son = Constraints(ends_with="son")
    exact = model.sample(1000, SamplingParams(), seed=3, constraints=son).names
    masked = masked_names(model, son, "", 1000, seed=3)
    assert np.mean([len(n) for n in masked]) > np.mean([len(s.name) for s in exact]) + 3


def test_shaped_p_constraint_is_the_sum_of_shaped_string_probabilities(models):
    model = models["mlp"]
    params = SamplingParams(prefix="ja", temperature=0.7, top_k=12, top_p=0.95)
    shaping = Shaping.of(params)
    words = enumerate_language(model.vocab.alphabet, "ja", (1, 2), "n")
    index = {c: i for i, c in enumerate(model.vocab.alphabet)}
    shaped = {}

    def step(prefix: str) -> np.ndarray:
        if prefix not in shaped:
            shaped[prefix] = shaped_probs(np.log(model.next_char(prefix).probs)[None, :], shaping, False)[0]
        return shaped[prefix]

    truth = np.array(
        [np.prod([step(w[:i])[index[c]] for i, c in enumerate(w) if i >= 2]) * step(w)[0] for w in words]
    )
    result = model.sample(DRAWS, params, seed=5, constraints=JA_N)
    assert result.constraint.p_constraint == pytest.approx(truth.sum(), abs=1e-9)
    assert chi_square_p(words, truth / truth.sum(), [s.name for s in result.names]) > 0.01


@pytest.mark.parametrize("family", ["bigram", "mlp"])
def test_exact_conditional_next_character(models, family):
    model = models[family]
    words = enumerate_language(model.vocab.alphabet, "ja", (1, 2), "n")
    probs, _ = conditional_probs(model, words, "ja")
    expected = np.zeros(model.vocab.size)
    for word, p in zip(words, probs, strict=True):
        expected[model.vocab.alphabet.index(word[2])] += p
    got, report = model.conditional_next_char(SamplingParams(prefix="ja"), JA_N)
    assert report.method == "exact"
    assert got == pytest.approx(expected, abs=1e-9)


def test_gru_estimated_conditional_next_character_is_close(models):
    model = models["gru"]
    words = enumerate_language(model.vocab.alphabet, "ja", (1, 2), "n")
    probs, total = conditional_probs(model, words, "ja")
    expected = np.zeros(model.vocab.size)
    for word, p in zip(words, probs, strict=True):
        expected[model.vocab.alphabet.index(word[2])] += p
    got, report = model.conditional_next_char(SamplingParams(prefix="ja"), JA_N, seed=1)
    assert report.method == "smc" and report.ess > 100
    assert got.sum() == pytest.approx(1.0)
    # 4,096 weighted particles (final ESS about 3,000): a share's standard error would be at most
    # 0.5 / sqrt(ESS) if they were independent; they share ancestors after resampling, so allow
    # three of those (0.027). Measured over seeds 0-3: the largest error 0.015-0.021.
    assert np.abs(got - expected).max() < 1.5 / np.sqrt(report.ess)
    assert report.p_constraint == pytest.approx(total, rel=0.15)


def random_constraints(rng: random.Random) -> Constraints:
    endings = ["a", "n", "son", "lyn", "ie", "y", "er", "ah", "el", "x"]
    pieces = ["ar", "el", "an", "ri", "o", "m", "ll", "k"]
    regexes = [None, None, "[a-m].*", ".*[aeiou][aeiou].*", "([^aeiou][aeiou])+.?", "(ja|ma|ka).*", ".{3,6}"]
    lo = rng.randint(1, 7)
    return Constraints(
        ends_with=rng.choice([None, None, *endings]),
        contains=tuple(rng.sample(pieces, rng.randint(0, 2))),
        excludes=tuple(rng.sample("qzxjvwy", rng.randint(0, 3))),
        length=rng.choice([None, (lo, lo + rng.randint(0, 8))]),
        regex=rng.choice(regexes),
    )


@pytest.mark.parametrize(
    ("family", "sets", "budget"), [("bigram", 60, None), ("mlp", 40, None), ("gru", 12, 20_000)]
)
def test_property_every_returned_name_satisfies_random_constraint_sets(models, family, sets, budget):
    model, rng = models[family], random.Random(2026)
    answered = 0
    for i in range(sets):
        constraints = random_constraints(rng)
        prefix = rng.choice(["", "", "a", "ma", "k"])
        params = SamplingParams(prefix=prefix, temperature=rng.choice([1.0, 0.8, 1.3]))
        try:
            result = model.sample(25, params, seed=i, constraints=constraints, budget=budget)
        except ParameterError as exc:  # an empty language: refused at "constraints"
            assert exc.problems[0][0][0] == "constraints"
            continue
        answered += 1
        assert result.complete or result.reason
        for sample in result.names:
            assert satisfies(sample.name, constraints, prefix), (constraints, prefix, sample.name)
            assert not sample.truncated
    assert answered >= sets // 2


def test_complete_false_with_a_reason_when_the_budget_runs_out(models):
    model = models["gru"]
    result = model.sample(
        500, SamplingParams(), seed=4, constraints=Constraints(ends_with="son"), budget=5_000
    )
    assert not result.complete
    assert 0 < len(result.names) < 500
    assert result.constraint.draws <= 5_000
    assert "within the budget" in result.reason and "of 500" in result.reason
    assert all(s.name.endswith("son") for s in result.names)


def test_novel_combines_with_constraints(models):
    model = models["mlp"]
    constraints = Constraints(length=(4, 6), contains=("ar",))
    result = model.sample(40, SamplingParams(), seed=8, constraints=constraints, novel=True)
    assert result.complete and len({s.name for s in result.names}) == 40
    assert all(s.novel and not model.is_known_word(s.name) for s in result.names)
    assert all(satisfies(s.name, constraints) for s in result.names)
    known = ["emma", "anna", "olivia"]
    if all(model.is_known_word(w) for w in known):  # a language of known names only: never novel
        result = model.sample(
            3, SamplingParams(), seed=8, constraints=Constraints(regex="|".join(known)), novel=True
        )
        assert not result.complete and result.names == [] and "novel" in result.reason


def test_seeded_answers_repeat_and_exact_rows_do_not_depend_on_the_batch(models):
    mlp, gru = models["mlp"], models["gru"]
    son = Constraints(ends_with="son")
    long = mlp.sample(50, SamplingParams(), seed=21, constraints=son)
    short = mlp.sample(10, SamplingParams(), seed=21, constraints=son)
    assert [s.name for s in short.names] == [s.name for s in long.names[:10]]
    for model in (mlp, gru):
        first = model.sample(40, SamplingParams(), seed=9, constraints=son)
        results = []

        def run(model: LanguageModel = model, results: list = results) -> None:
            results.append(model.sample(40, SamplingParams(), seed=9, constraints=son))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r == first for r in results)
        assert model.sample(40, SamplingParams(), seed=10, constraints=son) != first


def test_a_language_the_shaping_excludes_is_complete_false_not_garbage(models):
    for name in ("mlp", "gru"):
        model = models[name]
        params = SamplingParams(top_k=1)  # only the likeliest letter: never a name ending in x
        result = model.sample(5, params, seed=1, constraints=Constraints(ends_with="x"), budget=3_000)
        assert not result.complete and result.names == [] and result.constraint.p_constraint == 0.0
        probs, report = model.conditional_next_char(params, Constraints(ends_with="x"))
        assert report.p_constraint == 0.0 and not probs.any()
    assert "top_k" in models["mlp"].sample(2, params, constraints=Constraints(ends_with="x")).reason
