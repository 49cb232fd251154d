import math

import pytest
import torch
import torch.nn.functional as F

from model.families.base import count_parameters
from model.families.mlp import MLP, MLPConfig


def test_forward_matches_the_bengio_equations_by_hand():
    config = MLPConfig(vocab_size=7, block_size=3, n_embd=4, n_hidden=5)
    model = MLP(config, init="randn", generator=torch.Generator().manual_seed(0))
    x = torch.tensor([[0, 0, 0], [1, 2, 6]])
    emb = model.embedding.weight[x].reshape(2, 12)
    h = torch.tanh(emb @ model.hidden.weight.T + model.hidden.bias)
    expected = h @ model.output.weight.T + model.output.bias
    torch.testing.assert_close(model(x), expected)
    assert count_parameters(model) == 7 * 4 + 12 * 5 + 5 + 5 * 7 + 7


def test_model_loss_equals_cross_entropy_by_hand():
    model = MLP(MLPConfig(vocab_size=5, block_size=2, n_embd=3, n_hidden=8))
    x = torch.tensor([[0, 0], [0, 3], [3, 4]])
    y = torch.tensor([3, 4, 0])
    logits = model(x)
    by_hand = -(logits.exp() / logits.exp().sum(1, keepdim=True))[torch.arange(3), y].log().mean()
    torch.testing.assert_close(F.cross_entropy(logits, y), by_hand)


def test_scaled_init_starts_near_uniform_loss():
    model = MLP(MLPConfig(vocab_size=27), generator=torch.Generator().manual_seed(0))
    x = torch.randint(0, 27, (512, 3))
    loss = F.cross_entropy(model(x), torch.randint(0, 27, (512,)))
    assert abs(loss.item() - math.log(27)) < 0.05


@pytest.mark.parametrize("scheme,low,high", [("uniform:0.1,0.3", 0.1, 0.3), ("uniform:-4,0", -4, 0)])
def test_uniform_init_bounds_every_parameter(scheme, low, high):
    model = MLP(MLPConfig(vocab_size=27), init=scheme)
    for p in model.parameters():
        assert low <= p.min().item() and p.max().item() < high


def test_constant_init_sets_every_parameter():
    model = MLP(MLPConfig(vocab_size=27), init="constant:1")
    assert all(bool((p == 1).all()) for p in model.parameters())


@pytest.mark.parametrize("scheme", ["normal", "uniform:1", "uniform:2,1", "constant:x", "randn:1"])
def test_bad_init_scheme_is_rejected(scheme):
    with pytest.raises(ValueError, match="init"):
        MLP(MLPConfig(vocab_size=27), init=scheme)
