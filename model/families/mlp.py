"""The Bengio-2003 character MLP: embed the last `block_size` ids, concat, tanh layer, logits.

Reference: Bengio et al., "A Neural Probabilistic Language Model", JMLR 2003; Karpathy's
makemore part 2. The module is only a forward pass: ids in, logits out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.families.base import FamilyConfig, WindowModel
from model.families.registry import Family, register
from model.recipe import Recipe

INIT_SCHEMES_HELP = (
    "'scaled' (default), 'randn' (every parameter N(0,1)), 'uniform:A,B' (every parameter "
    "U[A,B)), 'constant:V' (every parameter V)"
)


@dataclass(frozen=True)
class MLPConfig(FamilyConfig):
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 300
    init: str = "scaled"  # how parameters start (INIT_SCHEMES_HELP); loading overwrites them


# The seed's reference run: SGD, batch 128, 200k steps, lr 0.1 then 0.01 from the halfway step.
RECIPE = Recipe(
    examples="windows", optimizer="sgd", steps=200_000, batch_size=128, lr=0.1, lr_after=0.01, keep_best=False
)


class MLP(WindowModel):
    kind = "mlp"

    def __init__(self, config: MLPConfig, init: str | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.hidden = nn.Linear(config.block_size * config.n_embd, config.n_hidden)
        self.output = nn.Linear(config.n_hidden, config.vocab_size)
        initialise(self, init or config.init, generator)

    def hidden_activations(self, contexts: torch.Tensor) -> torch.Tensor:
        """tanh activations h[N, n_hidden] for contexts[N, block_size] of ids."""
        # plain indexing and F.linear: the same numbers as calling the layers, without their
        # module dispatch (a few percent of a training step) and with a cheaper backward on CPU
        emb = self.embedding.weight[contexts].flatten(1)
        return torch.tanh(F.linear(emb, self.hidden.weight, self.hidden.bias))

    def window_logits(self, contexts: torch.Tensor) -> torch.Tensor:
        """Logits[N, vocab_size] for contexts[N, block_size] of ids."""
        return F.linear(self.hidden_activations(contexts), self.output.weight, self.output.bias)


@torch.no_grad()
def initialise(model: MLP, scheme: str, generator: torch.Generator | None = None) -> None:
    """Initialise every parameter of `model` by a named scheme (see INIT_SCHEMES_HELP).

    'scaled' converges fastest: embeddings N(0,1); hidden weights N(0,1) * (5/3)/sqrt(fan_in),
    the Kaiming gain for tanh, so pre-activations have about unit spread and sit on tanh's slope
    instead of its flat tails (where gradients vanish); hidden bias 0; output weights
    N(0,1) * 0.01 and bias 0, so the first logits are near-equal and the initial loss is about
    log(vocab_size) instead of a confidently wrong distribution the first steps must undo.
    """
    kind, _, arg = scheme.partition(":")
    params = list(model.parameters())
    if kind == "randn" and not arg:
        for p in params:
            p.copy_(torch.randn(p.shape, generator=generator))
    elif kind == "uniform":
        low, high = _parse_floats(scheme, arg, 2)
        if not low < high:
            raise ValueError(f"init {scheme!r}: need A < B")
        for p in params:
            p.copy_(torch.rand(p.shape, generator=generator) * (high - low) + low)
    elif kind == "constant":
        (value,) = _parse_floats(scheme, arg, 1)
        for p in params:
            p.fill_(value)
    elif kind == "scaled" and not arg:
        fan_in = model.hidden.in_features
        model.embedding.weight.copy_(torch.randn(model.embedding.weight.shape, generator=generator))
        model.hidden.weight.copy_(
            torch.randn(model.hidden.weight.shape, generator=generator) * (5 / 3) / math.sqrt(fan_in)
        )
        model.hidden.bias.zero_()
        model.output.weight.copy_(torch.randn(model.output.weight.shape, generator=generator) * 0.01)
        model.output.bias.zero_()
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; choose {INIT_SCHEMES_HELP}")


def _parse_floats(scheme: str, arg: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in arg.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"init {scheme!r} needs {count} finite number(s) after ':'")
    return values


FAMILY = register(
    Family("mlp", MLPConfig, MLP, RECIPE, "Bengio-2003 MLP: embed the last block_size characters, tanh layer")
)
