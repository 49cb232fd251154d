import math

import numpy as np
import pytest
import torch.nn.functional as F

from model.data import build_windows
from model.engine.params import ParameterError, SamplingParams
from tests.conftest import sample_names


def test_distribution_sums_to_one_and_is_nonnegative(tiny_model):
    for prefix in ["", "ka", "zuzuzu"]:
        probs = tiny_model.next_char(prefix).probs
        assert probs.shape == (tiny_model.vocab.size,)
        assert (probs >= 0).all()
        assert probs.dtype == np.float64
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_word_loss_is_mean_neg_log_of_next_char_distribution(tiny_model):
    word = "kamira"
    expected = []
    for i, target in enumerate(word + "."):
        probs = tiny_model.next_char(word[:i]).probs
        expected.append(-math.log(probs[tiny_model.vocab.alphabet.index(target)].item()))
    (score,) = tiny_model.word_losses([word])
    assert score.targets == "kamira."
    assert score.nlls == pytest.approx(expected, abs=1e-5)
    assert score.loss == pytest.approx(sum(expected) / len(expected), abs=1e-6)
    assert score.perplexity == pytest.approx(math.exp(score.loss))


def test_batched_losses_equal_cross_entropy_recomputed(tiny_model):
    words = ["ba", "dolores", "zezi", "kum"]
    scores = tiny_model.word_losses(words)
    x, y = build_windows(words, tiny_model.vocab, tiny_model.checkpoint.config["block_size"])
    per_prediction = F.cross_entropy(tiny_model.network(x), y, reduction="none").tolist()
    flat = [nll for s in scores for nll in s.nlls]
    assert flat == pytest.approx(per_prediction, abs=1e-5)
    assert [s.word for s in scores] == words


def test_word_losses_normalise_and_reject_bad_words(tiny_model):
    assert tiny_model.word_losses(["  KAMI "])[0].word == "kami"
    with pytest.raises(ParameterError) as err:
        tiny_model.word_losses(["ka7mi!"])
    assert "'7', '!'" in str(err.value) and err.value.problems[0][0] == (
        0,
    )  # the item index: the API names the field
    with pytest.raises(ValueError, match="empty"):
        tiny_model.word_losses(["   "])


def test_same_seed_same_samples_different_seed_differs(tiny_model):
    a = sample_names(tiny_model, 50, seed=3)
    assert a == sample_names(tiny_model, 50, seed=3)
    assert a != sample_names(tiny_model, 50, seed=4)


def test_samples_start_with_prefix_use_alphabet_and_respect_max_length(tiny_model):
    alphabet = set(tiny_model.vocab.alphabet) - {"."}
    for prefix, max_length in [("", 32), ("ka", 5), ("bo", 2), ("", 1)]:
        names = sample_names(tiny_model, 200, prefix=prefix, max_length=max_length, seed=1)
        assert len(names) == 200
        for name in names:
            assert name.startswith(prefix)
            assert set(name) <= alphabet
            assert len(name) <= max_length


def test_top_k_1_is_greedy(tiny_model):
    name = sample_names(tiny_model, 1, top_k=1, seed=0)[0]
    for seed in range(1, 5):
        assert sample_names(tiny_model, 3, top_k=1, seed=seed) == [name] * 3
    greedy = ""
    while len(greedy) < 32:
        probs = tiny_model.next_char(greedy).probs
        char = tiny_model.vocab.alphabet[int(probs.argmax())]
        if char == ".":
            break
        greedy += char
    assert name == greedy


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n": 0}, "n must"),
        ({"temperature": -0.5}, "temperature"),
        ({"min_distance": 3}, "min_distance"),
        ({"exclude": ["ok", "b4d"]}, "outside the alphabet"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 99}, "top_k"),
        ({"prefix": "kaka", "max_length": 3}, "max_length"),
    ],
)
def test_bad_sampling_arguments(tiny_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_names(tiny_model, **kwargs)


def test_known_words(tiny_model, small_word_file):
    words = small_word_file.read_text().split()
    assert all(tiny_model.is_known_word(w) for w in words[:50])
    assert tiny_model.is_known_word("  " + words[0].upper())
    assert not tiny_model.is_known_word("qqqq")


def test_known_names_in_bulk_agree_with_one_at_a_time(tiny_model, small_word_file):
    """Big batches hash with arrays, small ones word by word: the answers must not differ."""
    words = small_word_file.read_text().split()[:10]
    names = [w for pair in zip(words, [w + "q" for w in words], strict=True) for w in pair]
    bulk = tiny_model.are_known_names(names)
    assert bulk == [tiny_model.are_known_names([name])[0] for name in names] == [True, False] * 10


def test_checked_params_keep_every_field_and_check_once(tiny_model):
    """Normalising the prefix rebuilds the params by keyword: no other field falls back to its default."""
    from dataclasses import asdict

    from model.engine.params import SAMPLING_FIELDS

    asked = SamplingParams(temperature=0.5, top_k=3, top_p=0.9, prefix="  KA ", max_length=9)
    checked = asked.checked(tiny_model.vocab)
    assert asdict(checked) == {**asdict(asked), "prefix": "ka", "checked_for": tiny_model.vocab.alphabet}
    assert set(SAMPLING_FIELDS) == {
        "temperature", "top_k", "top_p", "prefix", "max_length", "distinct", "exclude", "min_distance"
    }  # fmt: skip
    assert checked.checked(tiny_model.vocab) is checked  # checked params are not looked at again
    assert checked == SamplingParams(temperature=0.5, top_k=3, top_p=0.9, prefix="ka", max_length=9)
    with pytest.raises(TypeError):
        SamplingParams(0.5)  # keyword only: a new field can never be filled by position


def test_cost_estimates_sum_each_position_once_per_request(tiny_checkpoint):
    """The cost bound's estimates (summed once per model and range, then reused) equal the sums of
    each position's step cost written out, on a model whose step cost grows with the position."""
    from model.engine.language_model import LanguageModel

    model = LanguageModel.from_checkpoint(tiny_checkpoint)  # its own caches: the patch stays here
    model.sources[0].step_seconds = lambda position: position * 1e-6
    params = SamplingParams(prefix="ka", max_length=12).checked(model.vocab)
    # 3 names: each reads positions 4 ('.', k, a first) to 14 (at most 10 more characters, within
    # max_length 12, and the end); the prefix is scored once, positions 1 to 3
    expected = 3 * sum(p * 1e-6 for p in range(4, 15)) + sum(p * 1e-6 for p in range(1, 4))
    for _ in range(2):  # the second answer comes from the cache
        assert model.plain_sample_seconds(3, params) == pytest.approx(expected, rel=1e-12)
        # a word of 4 letters reads '.' and 4 letters: positions 1 to 5
        assert model.scoring_seconds(["emma", "al"]) == pytest.approx(
            sum(p * 1e-6 for p in range(1, 6)) + sum(p * 1e-6 for p in range(1, 4)), rel=1e-12
        )
