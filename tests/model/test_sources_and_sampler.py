"""The context table and the batched sampler against the plain forward pass and exact statistics."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from model.engine import knobs
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.engine.shaping import cdf_from_log_probs
from model.engine.sources import ContextTable, ForwardSource


@pytest.fixture(scope="module")
def forward_model(tiny_checkpoint) -> LanguageModel:
    """The same checkpoint, forced onto the forward-pass path (no table)."""
    return LanguageModel.from_checkpoint(tiny_checkpoint, device="cpu", max_table_entries=0)


class Forced:
    """A model whose sampling always takes one implementation, whatever n is asked for."""

    def __init__(self, model: LanguageModel, python_max_n: int) -> None:
        self.model, self.python_max_n = model, python_max_n
        self.vocab = model.vocab

    def _call(self, method, *args):
        saved, knobs.PYTHON_SAMPLING_MAX_N = knobs.PYTHON_SAMPLING_MAX_N, self.python_max_n
        try:
            return method(*args)
        finally:
            knobs.PYTHON_SAMPLING_MAX_N = saved

    def sample_scored(self, n: int, seed: int | None = None, **params) -> list[tuple[str, float]]:
        result = self._call(self.model.sample, n, SamplingParams(**params), seed)
        return [(s.name, s.loss) for s in result.names]

    def sample(self, n: int, seed: int | None = None, **params) -> list[str]:
        return [name for name, _ in self.sample_scored(n, seed, **params)]

    def sample_batch(self, requests, **params):
        return self._call(self.model.sample_batch, requests, SamplingParams(**params))

    def word_losses(self, words):
        return self.model.word_losses(words)

    @property
    def network(self):
        return self.model.network


@pytest.fixture(scope="module")
def samplers(tiny_checkpoint, forward_model) -> dict[str, Forced]:
    """The three sampler implementations, each forced on whatever n is asked for."""
    table = LanguageModel.from_checkpoint(tiny_checkpoint, device="cpu")
    return {
        "table-python": Forced(table, 10**9),
        "table-vectorised": Forced(table, 0),
        "forward": Forced(forward_model, 10**9),
    }


def test_the_tiny_model_uses_the_table_and_the_forced_one_does_not(tiny_model, forward_model):
    assert tiny_model.rows_independent and isinstance(tiny_model.source, ContextTable)
    assert not forward_model.rows_independent and isinstance(forward_model.source, ForwardSource)


def test_table_equals_forward_pass_for_every_context(tiny_model):
    v, block = tiny_model.vocab.size, tiny_model.network.window
    every = torch.cartesian_prod(*[torch.arange(v)] * block)
    with torch.inference_mode():
        expected = torch.log_softmax(tiny_model.network(every).double(), dim=-1).numpy()
    table = tiny_model.source
    codes = [int(table.start(context)[0]) for context in every.tolist()]
    assert codes == list(range(v**block))  # code order is the enumeration order
    np.testing.assert_allclose(table.table, expected, rtol=0, atol=1e-9)
    cdf = table.cdf_table
    np.testing.assert_allclose(np.diff(cdf, axis=1, prepend=0.0), np.exp(expected), atol=1e-12)
    assert (cdf[:, -1] == 1.0).all()


def test_distributions_and_losses_match_the_forward_path(tiny_model, forward_model):
    """The table (float64, built once) and the forward pass it was built from (stepped in float32,
    the batch-invariant precision: `build_source`) agree to float32's precision."""
    for prefix in ["", "k", "mazo", "rututu"]:
        np.testing.assert_allclose(
            tiny_model.next_char(prefix).probs, forward_model.next_char(prefix).probs, atol=1e-6
        )
    words = ["kamira", "bo", "zezezeze", "a"]
    for fast, plain in zip(tiny_model.word_losses(words), forward_model.word_losses(words), strict=True):
        assert fast.nlls == pytest.approx(plain.nlls, abs=1e-5)
        assert fast.probs == pytest.approx(plain.probs, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{}, {"temperature": 0.6}, {"temperature": 2.5, "top_k": 4}, {"prefix": "ka", "max_length": 9}]
)
def test_all_samplers_draw_the_same_names(samplers, kwargs):
    for seed in (0, 1, 2):
        names = [model.sample(300, seed=seed, **kwargs) for model in samplers.values()]
        assert names[0] == names[1] == names[2]


def _expected_next(model: Forced, prefix: str, temperature: float, top_k: int | None) -> np.ndarray:
    """The exact distribution of the character after `prefix`, recomputed with torch."""
    context = torch.tensor([([0] * 3 + model.vocab.encode(prefix))[-3:]])
    with torch.no_grad():
        logits = model.network(context)[0] / temperature
    if not prefix:
        logits[0] = -math.inf  # names are never empty
    if top_k is not None:
        logits[logits < logits.topk(top_k).values[-1]] = -math.inf
    return torch.softmax(logits, dim=0).double().numpy()


@pytest.mark.parametrize(
    "prefix,temperature,top_k", [("", 1.0, None), ("", 0.7, None), ("ma", 1.0, None), ("ko", 1.8, 5)]
)
@pytest.mark.parametrize("path", ["table-python", "table-vectorised", "forward"])
def test_samples_follow_the_exact_distribution(samplers, path, prefix, temperature, top_k):
    """Chi-square on the character after the prefix over 6,000 samples, against exact probabilities."""
    model = samplers[path]
    n = 6000
    names = model.sample(
        n, prefix=prefix, temperature=temperature, top_k=top_k, max_length=len(prefix) + 1, seed=17
    )
    counts = Counter(name[len(prefix) :] or "." for name in names)
    observed = np.array([counts.get(c, 0) for c in model.vocab.alphabet], dtype=np.float64)
    expected = _expected_next(model, prefix, temperature, top_k) * n
    assert observed[expected == 0].sum() == 0  # impossible characters never appear
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)  # about 5 sigma: never flaky, catches any real bias


def test_cdf_respects_top_k_temperature_and_forbidden_column():
    log_probs = np.log(np.array([[0.1, 0.2, 0.3, 0.4]]))
    cdf = cdf_from_log_probs(log_probs, top_k=2)
    np.testing.assert_allclose(np.diff(cdf, prepend=0.0), [[0, 0, 3 / 7, 4 / 7]])
    cdf = cdf_from_log_probs(log_probs, temperature=0.5, forbid=3)
    weights = np.array([0.01, 0.04, 0.09, 0])
    np.testing.assert_allclose(np.diff(cdf, prepend=0.0), [weights / weights.sum()])
    assert cdf[0, -1] == 1.0


@pytest.mark.parametrize(
    "kwargs,kept",
    [
        # probabilities 0.1, 0.2, 0.3, 0.4: the likeliest first, until their mass reaches p
        ({"top_p": 0.4}, [0, 0, 0, 1]),  # 0.4 alone reaches 0.4
        ({"top_p": 0.5}, [0, 0, 3 / 7, 4 / 7]),  # 0.4 < 0.5 <= 0.4 + 0.3
        ({"top_p": 0.85}, [0, 2 / 9, 3 / 9, 4 / 9]),  # 0.7 < 0.85 <= 0.9
        ({"top_p": 1.0}, [0.1, 0.2, 0.3, 0.4]),
        # after the temperature: weights 1, 4, 9, 16 (/30); 16/30 < 0.6 <= 25/30
        ({"top_p": 0.6, "temperature": 0.5}, [0, 0, 9 / 25, 16 / 25]),
        # after top_k: 0.2, 0.3, 0.4 (/0.9); 4/9 < 0.5 <= 7/9
        ({"top_p": 0.5, "top_k": 3}, [0, 0, 3 / 7, 4 / 7]),
    ],
)
def test_top_p_keeps_the_smallest_likeliest_set_holding_p(kwargs, kept):
    """Nucleus sampling, checked against a hand computation of the kept set and its renormalised mass."""
    cdf = cdf_from_log_probs(np.log(np.array([[0.1, 0.2, 0.3, 0.4]])), **kwargs)
    np.testing.assert_allclose(np.diff(cdf, prepend=0.0), [kept], atol=1e-15)
    assert cdf[0, -1] == 1.0


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (1.5, 6)])
@pytest.mark.parametrize("path", ["table-python", "table-vectorised", "forward"])
def test_later_characters_follow_the_exact_conditional_distribution(samplers, path, temperature, top_k):
    """The second character, given the likeliest first one, against exact probabilities."""
    model = samplers[path]
    names = model.sample(20_000, temperature=temperature, top_k=top_k, max_length=2, seed=23)
    first = Counter(name[0] for name in names).most_common(1)[0][0]
    seconds = Counter(name[1:] or "." for name in names if name[0] == first)
    n = sum(seconds.values())
    observed = np.array([seconds.get(c, 0) for c in model.vocab.alphabet], dtype=np.float64)
    context = torch.tensor([[0, 0, model.vocab.encode(first)[0]]])
    with torch.no_grad():
        logits = model.network(context)[0] / temperature
    if top_k is not None:
        logits[logits < logits.topk(top_k).values[-1]] = -math.inf
    expected = torch.softmax(logits, dim=0).double().numpy() * n
    assert observed[expected == 0].sum() == 0
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"temperature": 1.7, "top_k": 5},
        {"prefix": "ka"},
        {"max_length": 3},
        {"prefix": "bo", "max_length": 4},
    ],
)
@pytest.mark.parametrize("path", ["table-python", "table-vectorised", "forward"])
def test_sampled_losses_equal_word_losses(samplers, path, kwargs):
    """The loss that comes with each sample is the model's NLL of that name, cut names included."""
    model = samplers[path]
    scored = model.sample_scored(200, seed=5, **kwargs)
    expected = [score.loss for score in model.word_losses([name for name, _ in scored])]
    assert [loss for _, loss in scored] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("path", ["table-python", "table-vectorised", "forward"])
def test_requests_sampled_together_get_the_names_they_get_alone(samplers, path):
    model = samplers[path]
    requests = [(5, 1), (40, 2), (1, 1), (17, 123456789)]
    together = model.sample_batch(requests, temperature=1.3, prefix="k", max_length=12)
    alone = [model.sample_scored(n, temperature=1.3, prefix="k", max_length=12, seed=s) for n, s in requests]
    for got, expected in zip(together, alone, strict=True):
        assert [s.name for s in got] == [name for name, _ in expected]
        assert [s.loss for s in got] == pytest.approx([loss for _, loss in expected], abs=1e-12)


def test_the_start_cache_of_a_forward_pass_is_bounded_by_bytes(monkeypatch):
    from model.engine.sources import state_bytes
    from tests.conftest import ROOT

    monkeypatch.setattr(knobs, "START_CACHE_BYTES", 256 * 1024)  # about 9 of these prefixes
    model = LanguageModel.from_checkpoint(ROOT / "weights" / "names-transformer.safetensors", device="cpu")
    source = model.source
    prefixes = [[1 + i % 26, 1 + i // 26 % 26, *range(1, 12)] for i in range(16)]  # 13 ids: ~29 KB each
    for prefix in prefixes:
        source.start(prefix)
    held = sum(state_bytes(state) for state in source._starts.values())
    assert held == source.start_cache_bytes
    assert knobs.START_CACHE_BYTES - 40 * 1024 < held <= knobs.START_CACHE_BYTES  # full, never past it
    assert len(source._starts) < len(prefixes)
    # a prefix left out of the cache starts exactly as a cached one would
    first, last = source.start(prefixes[0]), source.start(prefixes[-1])
    assert tuple(prefixes[-1]) not in source._starts
    np.testing.assert_array_equal(last[1], source.start(prefixes[-1])[1])
    assert first is source.start(prefixes[0])
