"""The committed default checkpoint reproduces its stored metrics on the reference word list."""

import pytest

from model.checkpoint import load_checkpoint
from model.data import REFERENCE_SHA256, build_windows, file_sha256, read_words, split_words
from model.train import evaluate
from tests.conftest import DEFAULT_CHECKPOINT, REFERENCE_WORDS, needs_reference_words


@needs_reference_words
def test_committed_checkpoint_metrics_recompute_from_the_reference_list():
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert ckpt.data["sha256"] == REFERENCE_SHA256 == file_sha256(REFERENCE_WORDS)
    words = read_words(REFERENCE_WORDS)
    assert ckpt.data["word_count"] == len(words)
    splits = split_words(words, ckpt.data["split_seed"], tuple(ckpt.data["split_fractions"]))
    model = ckpt.build_model()
    for split in ("val", "test"):
        x, y = build_windows(getattr(splits, split), ckpt.vocab, ckpt.config.block_size)
        assert evaluate(model, x, y) == pytest.approx(ckpt.metrics[f"{split}_loss"], abs=1e-5)
    assert ckpt.metrics["val_loss"] <= 2.17


def test_committed_checkpoint_loads_with_reference_config():
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert (ckpt.config.block_size, ckpt.config.n_embd, ckpt.config.n_hidden) == (3, 10, 300)
    assert ckpt.metrics["steps"] == 200_000
    assert ckpt.vocab.alphabet == ".abcdefghijklmnopqrstuvwxyz"
