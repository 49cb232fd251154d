"""Which model answers when a request names none: never one chosen by comparing val losses across
different word lists, and /models never shows where a word list lay on the trainer's disk."""

import logging
import shutil

import pytest

from app.serving.service import choose_default, describe_data, load_models
from app.settings import Settings
from model import train
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def mixed_weights(tmp_path_factory):
    """The committed GRU and MLP beside a bigram counted from a 136-word toy list."""
    weights = tmp_path_factory.mktemp("weights")
    for name in ("names-gru", "names-mlp"):
        shutil.copy(ROOT / "weights" / f"{name}.safetensors", weights)
    toy = weights.parent / "toy.txt"
    syllables = [a + b for a in "bdn" for b in "ao"]  # a list far easier to predict than real names
    words = [x + y + z for x in syllables for y in ["", *syllables] for z in ["", "n"]][:136]
    toy.write_text("\n".join(words) + "\n", encoding="utf-8")
    args = ["--family", "bigram", "--data", str(toy), "--out", str(weights / "toy-bigram.safetensors")]
    assert train.main([*args, "--device", "cpu", "--no-progress"]) == 0
    return weights


def test_a_toy_list_cannot_win_the_default_by_its_val_loss(mixed_weights, caplog):
    models = load_models(Settings(weights=mixed_weights, device="cpu"))
    val = {name: m.checkpoint.metrics["val_loss"] for name, m in models.items()}
    assert val["toy-bigram"] < val["names-gru"]  # the trap: an easier list has a lower val loss
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        assert choose_default(models, None) == "names-gru"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "different word lists" in warning and "toy.txt" in warning and "names.txt" in warning
    assert "toy-bigram not compared" in warning
    assert choose_default(models, "toy-bigram") == "toy-bigram"  # a named default is obeyed


def test_the_largest_group_wins_when_no_model_saw_the_reference_list(mixed_weights, tmp_path):
    for name in ("toy-bigram",):
        shutil.copy(mixed_weights / f"{name}.safetensors", tmp_path / f"{name}.safetensors")
        shutil.copy(mixed_weights / f"{name}.safetensors", tmp_path / f"{name}-copy.safetensors")
    shutil.copy(mixed_weights / "names-mlp.safetensors", tmp_path)
    models = load_models(Settings(weights=tmp_path, device="cpu"))
    # names-mlp was trained on the reference list: it is the only comparable one
    assert choose_default(models, None) == "names-mlp"
    (tmp_path / "names-mlp.safetensors").unlink()
    models = load_models(Settings(weights=tmp_path, device="cpu"))
    assert choose_default(models, None) in {"toy-bigram", "toy-bigram-copy"}


def test_models_show_the_word_list_by_file_name_only():
    data = {"source": "/home/someone/private/lists/names.txt", "sha256": "ab"}
    assert describe_data(data) == {"source": "names.txt", "sha256": "ab"}
    assert describe_data({"source": "C:/lists/names.txt"})["source"] == "names.txt"
    assert describe_data({}) == {}
