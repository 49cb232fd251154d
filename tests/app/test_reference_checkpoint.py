"""The committed checkpoints reproduce their stored metrics on the reference word list."""

import pytest

from app.serving.service import choose_default, load_models
from app.settings import Settings
from model import train
from model.checkpoint import load_checkpoint
from model.data import REFERENCE_SHA256, file_sha256, read_words, split_words
from model.families import build_model
from model.reference import reference_of
from model.training.examples import Sequences, evaluate
from tests.conftest import DEFAULT_CHECKPOINT, REFERENCE_WORDS, ROOT, needs_reference_words

COMMITTED = sorted((ROOT / "weights").glob("*.safetensors"))


@needs_reference_words
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_checkpoint_metrics_recompute_from_the_reference_list(path):
    ckpt = load_checkpoint(path)
    assert ckpt.data["sha256"] == REFERENCE_SHA256 == file_sha256(REFERENCE_WORDS)
    words = read_words(REFERENCE_WORDS)
    assert ckpt.data["word_count"] == len(words)
    splits = split_words(words, ckpt.data["split_seed"], tuple(ckpt.data["split_fractions"]))
    model = build_model(ckpt)
    for split in ("val", "test"):
        examples = Sequences.of(getattr(splits, split), ckpt.vocab)
        assert evaluate(model, examples) == pytest.approx(ckpt.metrics[f"{split}_loss"], abs=1e-5)
    assert ckpt.train_args["command"].startswith("python -m model.train")
    # the percentiles' reference: the test split's losses, as `python -m model.reference` computes them
    # (to 4 decimals; float32 steps may round a last digit differently with another BLAS thread count)
    expected = reference_of(ckpt, words)
    assert ckpt.reference["split"] == expected["split"] and ckpt.reference["words"] == expected["words"]
    assert ckpt.reference["losses"] == pytest.approx(expected["losses"], abs=2e-4)


def test_committed_mlp_loads_with_reference_config():
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert (ckpt.config["block_size"], ckpt.config["n_embd"], ckpt.config["n_hidden"]) == (3, 10, 300)
    assert ckpt.metrics["steps"] == 200_000 and ckpt.metrics["val_loss"] <= 2.17
    assert ckpt.vocab.alphabet == ".abcdefghijklmnopqrstuvwxyz"


def test_the_default_model_is_the_best_on_val_and_below_2_nats_on_test():
    models = load_models(Settings(device="cpu"))
    default = models[choose_default(models, None)]
    assert all(
        default.checkpoint.metrics["val_loss"] <= m.checkpoint.metrics["val_loss"] for m in models.values()
    )
    assert default.checkpoint.metrics["test_loss"] <= 2.00
    assert default.kind == train.DEFAULT_FAMILY  # `python -m model.train` trains the served family
