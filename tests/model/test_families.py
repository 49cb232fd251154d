"""Every registered family meets the CharModel contract; the new families' own arithmetic.

Contract tests run on small configs (fast); parameter counts use the reference presets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.families import count_parameters, family_kinds, get_family
from model.families.bigram import Bigram, BigramConfig
from model.families.wavenet import WaveNet, WaveNetConfig

V = 7  # small vocabulary for the contract tests
TOL = {"atol": 1e-5, "rtol": 1e-5}

# Small configs per family (a family missing here is tested on its reference preset). The
# transformer's block 8 lets rows of 40 cross its context limit; the GRU has two layers so the
# state's [n_layer, rows, hidden] layout is exercised.
SMALL = {
    "bigram": {"smoothing": 0.5},
    "mlp": {"block_size": 3, "n_embd": 4, "n_hidden": 16},
    "wavenet": {"block_size": 8, "n_embd": 4, "n_hidden": 16},
    "gru": {"n_embd": 8, "n_hidden": 16, "n_layer": 2},
    "transformer": {"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16},
}
MAX_LENGTH = {"transformer": 40}  # others: 24, past every window in SMALL


def small_model(kind: str, seed: int = 0, **overrides) -> nn.Module:
    """A small model of `kind` with its parameters and norm statistics moved off their init (a
    bigram's uniform table, a BatchNorm at identity would hide mistakes), in eval mode."""
    family = get_family(kind)
    model = family.build(family.config(vocab_size=V, **{**SMALL.get(kind, {}), **overrides}))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(0.5 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model.eval()


def random_rows(rows: int, length: int, seed: int = 1) -> torch.Tensor:
    """Rows that begin with the boundary id 0, as the engine's rows do."""
    ids = torch.randint(0, V, (rows, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 0
    return ids


def step_through(model, ids: torch.Tensor, state=None) -> tuple[object, torch.Tensor]:
    state = model.start(ids.shape[0]) if state is None else state
    out = []
    for t in range(ids.shape[1]):
        state, logits = model.step(state, ids[:, t])
        out.append(logits)
    return state, torch.stack(out, dim=1)


@pytest.fixture(params=family_kinds())
def kind(request) -> str:
    return request.param


@torch.no_grad()
def test_step_by_step_equals_sequence_logits(kind):
    model = small_model(kind)
    ids = random_rows(6, MAX_LENGTH.get(kind, 24))
    _, stepped = step_through(model, ids)
    expected = model.sequence_logits(ids)
    assert expected.shape == (6, ids.shape[1], V)
    torch.testing.assert_close(stepped, expected, **TOL)


@torch.no_grad()
def test_keep_continues_like_the_kept_rows_alone(kind):
    model = small_model(kind)
    length = MAX_LENGTH.get(kind, 24)
    ids = random_rows(5, length)
    state, _ = step_through(model, ids[:, :5])
    rows = torch.tensor([3, 1])  # a reordering subset: the state must follow the indices
    _, continued = step_through(model, ids[rows, 5:], model.keep(state, rows))
    for i, row in enumerate(rows.tolist()):
        _, alone = step_through(model, ids[row : row + 1])
        torch.testing.assert_close(continued[i], alone[0, 5:], **TOL)


@torch.no_grad()
def test_the_grus_numpy_steps_equal_its_sequence_logits_and_keep_follows_the_rows():
    """The GRU's NumPy serving steps (two layers: each layer's one dense call feeds the next
    step, the layer above and the head) compute what its torch module computes."""
    model = small_model("gru").for_inference()
    steps = model.numpy_steps()
    ids = random_rows(5, 24)
    expected = model.sequence_logits(ids).numpy()
    state = steps.start(5)
    for t in range(10):
        state, logits = steps.step(state, ids[:, t].numpy())
        np.testing.assert_allclose(logits, expected[:, t], **TOL)
    rows = np.array([3, 1, 3])  # a reordering subset with a repeat
    state = steps.keep(state, rows)
    for t in range(10, 24):
        state, logits = steps.step(state, ids[rows, t].numpy())
        np.testing.assert_allclose(logits, expected[rows, t], **TOL)


@torch.no_grad()
def test_sequence_logits_of_a_batch_equal_each_row_alone(kind):
    model = small_model(kind)
    ids = random_rows(4, MAX_LENGTH.get(kind, 24))
    batch = model.sequence_logits(ids)
    for row in range(ids.shape[0]):
        torch.testing.assert_close(batch[row], model.sequence_logits(ids[row : row + 1])[0], **TOL)


def test_same_seed_same_parameters_other_seed_different(kind):
    family = get_family(kind)
    config = family.config(vocab_size=V, **SMALL.get(kind, {}))

    def params(seed: int) -> dict[str, torch.Tensor]:
        return family.build(config, torch.Generator().manual_seed(seed)).state_dict()

    first, again, other = params(1), params(1), params(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    if kind == "bigram":
        # nothing random to draw: it starts uniform and is then counted
        assert all(torch.equal(first[k], other[k]) for k in first)
    else:
        assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


@torch.no_grad()
def test_for_inference_gives_the_eval_logits(kind):
    model = small_model(kind)
    ids = random_rows(4, MAX_LENGTH.get(kind, 24))
    expected = model.sequence_logits(ids)
    served = model.for_inference()
    assert not served.training
    torch.testing.assert_close(served.sequence_logits(ids), expected, **TOL)
    torch.testing.assert_close(step_through(served, ids)[1], expected, **TOL)


def test_window_and_context_limit(kind):
    model = get_family(kind).build(get_family(kind).config(vocab_size=V, **SMALL.get(kind, {})))
    expected = {
        "bigram": (1, 1),
        "mlp": (3, 3),
        "wavenet": (8, 8),
        "gru": (None, None),
        "transformer": (None, 8),
    }
    assert (model.window, model.context_limit) == expected[kind]


def test_recipe_examples_match_what_the_family_reads(kind):
    family = get_family(kind)
    model = family.build(family.config(vocab_size=V, **SMALL.get(kind, {})))
    allowed = {"counts"} if kind == "bigram" else {"windows"} if model.window else {"sequences"}
    assert family.recipe.examples in allowed


BAD_CONFIGS = [
    ("bigram", {"vocab_size": 0}),
    ("bigram", {"smoothing": -1.0}),
    ("bigram", {"smoothing": math.inf}),
    ("bigram", {"block_size": 2}),  # fixed at 1: not a field
    ("wavenet", {"n_hidden": 0}),
    ("wavenet", {"n_embd": 0}),
    ("wavenet", {"norm": "group"}),
    ("wavenet", {"block_size": 6}),  # pairs are fused: a power of two
    ("wavenet", {"block_size": 1}),
    ("gru", {"n_hidden": 0}),
    ("gru", {"n_layer": 0}),
    ("gru", {"dropout": 1.0}),
    ("gru", {"dropout": -0.1}),
    ("transformer", {"block_size": 0}),
    ("transformer", {"n_head": 0}),
    ("transformer", {"dropout": 1.0}),
    ("transformer", {"n_embd": 10, "n_head": 4}),  # heads must split n_embd evenly
]


@pytest.mark.parametrize("kind_,values", BAD_CONFIGS)
def test_config_rejects_bad_values(kind_, values):
    with pytest.raises(ValueError):
        get_family(kind_).config(**{"vocab_size": 27, **values})


def test_reference_parameter_counts_equal_the_formulas():
    v = 27
    mlp_e, mlp_b, mlp_h = 10, 3, 300
    e, h = 24, 128  # wavenet: embedding, 3 levels of (2 * width -> h, no bias) + BatchNorm, head
    wavenet = v * e + (2 * e * h + 2 * h) + 2 * (2 * h * h + 2 * h) + h * v + v
    ge, gh = 64, 256  # gru: embedding, W_ih, W_hh, b_ih, b_hh (3 gates each), head
    gru = v * ge + 3 * gh * (ge + gh) + 2 * 3 * gh + gh * v + v
    c, block, layers = 64, 16, 4  # transformer: per block 2 LayerNorms, qkv, proj, 4x MLP
    per_block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c)
    transformer = v * c + block * c + layers * per_block + 2 * c + c * v  # head without bias
    expected = {
        "bigram": v * v,
        "mlp": v * mlp_e + mlp_b * mlp_e * mlp_h + mlp_h + mlp_h * v + v,
        "wavenet": wavenet,
        "gru": gru,
        "transformer": transformer,
    }
    assert (expected["bigram"], expected["wavenet"], expected["gru"], expected["transformer"]) == (
        729,
        76_579,
        255_963,
        204_544,
    )
    for kind, count in expected.items():
        family = get_family(kind)
        assert count_parameters(family.build(family.config(vocab_size=v))) == count, kind


def test_bigram_fit_counts_gives_the_smoothed_count_probabilities():
    # vocabulary '.', a, b, c; names "ab" and "b" as '.'+name+'.' rows padded with 0
    ids = torch.tensor([[0, 1, 2, 0], [0, 2, 0, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    model = Bigram(BigramConfig(vocab_size=4, smoothing=1.0))
    model.fit_counts(ids, mask)
    # transitions .a ab b. .b b. plus 1 everywhere; the padding's . -> . is not counted
    counts = torch.tensor([[1, 2, 2, 1], [1, 1, 2, 1], [3, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.float64)
    expected = counts / counts.sum(1, keepdim=True)
    torch.testing.assert_close(model.log_probs.double().exp(), expected, atol=1e-7, rtol=0)
    # the loss of a row is the mean -log of those probabilities along it
    loss = F.cross_entropy(model.sequence_logits(ids[:1, :-1])[0], ids[0, 1:])
    by_hand = -(expected[0, 1].log() + expected[1, 2].log() + expected[2, 0].log()) / 3
    assert abs(loss.item() - by_hand.item()) < 1e-6

    unsmoothed = Bigram(BigramConfig(vocab_size=4, smoothing=0.0))
    unsmoothed.fit_counts(ids, mask)
    probs = unsmoothed.log_probs.exp()
    torch.testing.assert_close(probs[0], torch.tensor([0.0, 0.5, 0.5, 0.0]))
    torch.testing.assert_close(probs[2], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(probs[3], torch.full((4,), 0.25))  # never seen: uniform, not 0/0


@torch.no_grad()
def test_wavenet_batchnorm_averages_over_batch_and_pairs():
    model = WaveNet(WaveNetConfig(vocab_size=V, block_size=8, n_embd=3, n_hidden=5))
    model.train()
    contexts = random_rows(6, 8)
    x = model.embedding(contexts).reshape(6, 4, 6) @ model.levels[0].linear.weight.T
    mean, var = x.mean((0, 1)), x.var((0, 1), unbiased=False)
    expected = torch.tanh((x - mean) / torch.sqrt(var + 1e-5))
    torch.testing.assert_close(model.levels[0](model.embedding(contexts)), expected)


@torch.no_grad()
def test_wavenet_folding_after_training_statistics():
    model = WaveNet(WaveNetConfig(vocab_size=V, block_size=8, n_embd=4, n_hidden=16))
    model.train()
    for seed in range(5):  # move the running statistics as training does
        model(random_rows(32, 8, seed=seed))
    model.eval()
    contexts = random_rows(50, 8, seed=9)
    served = model.for_inference()
    assert not any(isinstance(m, nn.BatchNorm1d) for m in served.modules())
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())  # the original is untouched
    torch.testing.assert_close(served(contexts), model(contexts), atol=1e-5, rtol=1e-5)
    model.double()
    diff = (model.for_inference()(contexts) - model(contexts)).abs().max().item()
    assert diff < 1e-12


@torch.no_grad()
def test_wavenet_layernorm_variant_steps_like_its_sequence():
    model = small_model("wavenet", norm="layer")
    ids = random_rows(3, 20)
    assert any(isinstance(m, nn.LayerNorm) for m in model.modules())
    torch.testing.assert_close(step_through(model, ids)[1], model.sequence_logits(ids), **TOL)
    torch.testing.assert_close(model.for_inference().sequence_logits(ids), model.sequence_logits(ids))


@torch.no_grad()
def test_transformer_beyond_its_block_reads_only_the_last_block_ids():
    model = small_model("transformer")
    ids = random_rows(2, 20)
    changed = ids.clone()
    changed[:, 1:4] = (changed[:, 1:4] + 1) % V  # positions 1..3 are outside the window of t >= 11
    a, b = model.sequence_logits(ids), model.sequence_logits(changed)
    torch.testing.assert_close(a[:, 11:], b[:, 11:])
    assert not torch.allclose(a[:, 3:11], b[:, 3:11])


def test_dropout_is_active_in_training_only():
    for kind in ("gru", "transformer"):
        model = small_model(kind)
        ids = random_rows(3, 10)
        model.train()
        assert not torch.equal(model.sequence_logits(ids), model.sequence_logits(ids))
        model.eval()
        assert torch.equal(model.sequence_logits(ids), model.sequence_logits(ids))


def test_the_hand_written_family_lists_match_the_registry():
    """pyproject's import contract lists the family modules by hand (import-linter cannot derive it):
    it must name exactly the registered families, and every family file must register one."""
    import tomllib

    from model.families import family_kinds
    from tests.conftest import ROOT

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (naming,) = [c for c in contracts if "nothing names a family" in c["name"]]
    assert sorted(naming["forbidden_modules"]) == sorted(f"model.families.{k}" for k in family_kinds())
    files = {path.stem for path in (ROOT / "model" / "families").glob("*.py")}
    shared = {"__init__", "base", "registry", "dense"}  # the contract, the registry, a serving layer
    assert files - shared == set(family_kinds())
