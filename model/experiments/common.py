"""What every experiment shares: the word list, its split and windows, and identically seeded models.

The reference configuration is not restated here: the model shape comes from `MLPConfig`'s
defaults and the split, seeds, batch size and schedule from the MLP family's `RECIPE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from model.data import download_word_list, file_sha256, read_words, split_words
from model.families.mlp import MLP, RECIPE, MLPConfig
from model.training.examples import Windows
from model.vocab import Vocab

ROOT = Path(__file__).resolve().parents[2]
SHARED_WORDS = ROOT.parent / "shared" / "data" / "names.txt"


@dataclass(frozen=True)
class Data:
    """A word list's train/val/test windows and the reference model shape that fits its alphabet."""

    source: str
    sha256: str
    word_count: int
    config: MLPConfig
    train: Windows
    val: Windows  # the test split is never touched here

    @property
    def uniform_loss(self) -> float:
        """Loss of a model that gives every character the same probability: ln(vocab size)."""
        return math.log(self.config.vocab_size)


def default_data_path() -> Path:
    """The shared reference list beside the repository when present, else the verified download."""
    return SHARED_WORDS if SHARED_WORDS.is_file() else download_word_list()


def load_data(
    path: Path,
    n_hidden: int = MLPConfig.n_hidden,
    block_size: int = MLPConfig.block_size,
    n_embd: int = MLPConfig.n_embd,
) -> Data:
    """Read `path`, split it by word (RECIPE's split seed and fractions, as model.train), build windows."""
    words = read_words(path)
    vocab = Vocab.from_words(words)
    splits = split_words(words, RECIPE.split_seed, RECIPE.split)
    config = MLPConfig(vocab.size, block_size=block_size, n_embd=n_embd, n_hidden=n_hidden)
    return Data(
        str(path),
        file_sha256(path),
        len(words),
        config,
        Windows.of(splits.train, vocab, block_size),
        Windows.of(splits.val, vocab, block_size),
    )


def fresh_model(data: Data, init: str, seed: int = RECIPE.seed) -> MLP:
    """A new reference MLP initialised by `init` from its own generator seeded with `seed`."""
    return MLP(data.config, init=init, generator=torch.Generator().manual_seed(seed))


def batch_generator(seed: int = RECIPE.seed) -> torch.Generator:
    """The minibatch sampler's generator: the same seed gives every run the same index stream."""
    return torch.Generator().manual_seed(seed)


def sample_index(rows: int, count: int, seed: int = RECIPE.seed) -> torch.Tensor:
    """A fixed random choice of at most `count` of `rows` row indices (all of them when fewer)."""
    if rows <= count:
        return torch.arange(rows)
    return torch.randperm(rows, generator=torch.Generator().manual_seed(seed))[:count]
