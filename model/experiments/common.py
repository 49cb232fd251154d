"""What every experiment shares: the word list, its split and windows, and identically seeded models."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from model.data import build_windows, download_word_list, file_sha256, read_words, split_words
from model.families.mlp import MLP, MLPConfig
from model.vocab import Vocab

ROOT = Path(__file__).resolve().parents[2]
SHARED_WORDS = ROOT.parent / "shared" / "data" / "names.txt"
SPLIT_SEED = 42
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SEED = 1337  # init and minibatch seed of every run, as model.train uses

Windows = tuple[torch.Tensor, torch.Tensor]


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


def load_data(path: Path, n_hidden: int = 300, block_size: int = 3, n_embd: int = 10) -> Data:
    """Read `path`, split it by word (seed 42, 80/10/10 as model.train) and build the windows."""
    words = read_words(path)
    vocab = Vocab.from_words(words)
    splits = split_words(words, SPLIT_SEED, SPLIT_FRACTIONS)
    config = MLPConfig(vocab.size, block_size, n_embd, n_hidden)

    def windows(split: list[str]) -> Windows:
        return build_windows(split, vocab, block_size)

    return Data(
        str(path),
        file_sha256(path),
        len(words),
        config,
        windows(splits.train),
        windows(splits.val),
    )


def fresh_model(data: Data, init: str, seed: int = SEED) -> MLP:
    """A new reference MLP initialised by `init` from its own generator seeded with `seed`."""
    return MLP(data.config, init=init, generator=torch.Generator().manual_seed(seed))


def batch_generator(seed: int = SEED) -> torch.Generator:
    """The minibatch sampler's generator: the same seed gives every run the same index stream."""
    return torch.Generator().manual_seed(seed)


def sample_index(rows: int, count: int, seed: int = SEED) -> torch.Tensor:
    """A fixed random choice of at most `count` of `rows` row indices (all of them when fewer)."""
    if rows <= count:
        return torch.arange(rows)
    return torch.randperm(rows, generator=torch.Generator().manual_seed(seed))[:count]
