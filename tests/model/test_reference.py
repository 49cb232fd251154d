"""Percentiles: the held-out names' losses a checkpoint stores, and each name's place among them."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.checkpoint import CorruptCheckpointError, load_checkpoint, save_checkpoint
from model.data import read_words, split_words
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.reference import add_reference, main


def test_training_stores_the_test_splits_sorted_losses(
    tiny_checkpoint: Path, small_word_file: Path, tiny_model
):
    ckpt = load_checkpoint(tiny_checkpoint)
    splits = split_words(
        read_words(small_word_file), ckpt.data["split_seed"], tuple(ckpt.data["split_fractions"])
    )
    expected = sorted(score.loss for score in tiny_model.word_losses(splits.test))
    assert ckpt.reference["split"] == "test" and ckpt.reference["words"] == len(splits.test)
    assert ckpt.reference["losses"] == pytest.approx(expected, abs=6e-5)  # stored to 4 decimals


def test_percentile_is_the_share_of_held_out_names_with_a_higher_loss(tiny_model):
    reference = tiny_model.checkpoint.reference["losses"]
    for loss in [0.0, reference[0], reference[len(reference) // 3], 2.2, reference[-1], 99.0]:
        higher = sum(r > loss for r in reference)
        ties = sum(r == loss for r in reference)
        expected = round(100 * (higher + ties / 2) / len(reference), 1)
        assert tiny_model.percentiles([loss]) == [pytest.approx(expected, abs=1e-9)]
    assert tiny_model.percentiles([0.0, 99.0]) == [100.0, 0.0]


def test_sampled_names_carry_the_percentile_of_their_loss(tiny_model):
    names = tiny_model.sample(20, SamplingParams(), seed=5).names
    assert [s.percentile for s in names] == tiny_model.percentiles([s.loss for s in names])
    by_loss = sorted(names, key=lambda s: s.loss)
    assert [s.percentile for s in by_loss] == sorted((s.percentile for s in names), reverse=True)


def test_a_checkpoint_without_a_reference_has_no_percentiles(tiny_checkpoint: Path, tmp_path: Path):
    bare = tmp_path / "bare.safetensors"
    save_checkpoint(bare, replace(load_checkpoint(tiny_checkpoint), reference={}))
    model = LanguageModel.from_checkpoint(bare, "cpu")
    assert model.percentiles([1.0, 2.0]) == [None, None]
    assert model.sample(2, SamplingParams(), seed=1).names[0].percentile is None


def test_adding_a_reference_keeps_every_tensor_and_needs_the_same_word_list(
    tiny_checkpoint: Path, small_word_file: Path, tmp_path: Path, capsys
):
    bare = tmp_path / "bare.safetensors"
    original = load_checkpoint(tiny_checkpoint)
    save_checkpoint(bare, replace(original, reference={}))
    main([str(bare), "--data", str(small_word_file)])
    assert "test names, median loss" in capsys.readouterr().out
    updated = load_checkpoint(bare)
    assert updated.reference == original.reference
    assert updated.state_dict.keys() == original.state_dict.keys()
    assert all(torch.equal(updated.state_dict[k], v) for k, v in original.state_dict.items())
    assert torch.equal(updated.known_word_hashes, original.known_word_hashes)
    other = tmp_path / "other.txt"
    other.write_text("ann\nbob\n")
    with pytest.raises(ValueError, match="not the word list"):
        add_reference(bare, other)


@pytest.mark.parametrize(
    "reference",
    [{"losses": []}, {"losses": [2.0, 1.0]}, {"losses": [1.0, float("nan")]}, {"losses": "1,2"}],
)
def test_a_bad_reference_is_refused_naming_the_file(tiny_checkpoint: Path, tmp_path: Path, reference):
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, replace(load_checkpoint(tiny_checkpoint), reference=reference))
    with pytest.raises(CorruptCheckpointError, match="reference"):
        load_checkpoint(bad)


def test_adding_a_reference_cleans_the_words_as_training_did(small_word_file: Path, tmp_path: Path):
    """A model trained with --lowercase on capitalised words: the reference is recomputed from
    the same cleaned words, so it equals the one training stored."""
    from model.train import main as train

    shouting = tmp_path / "Words.txt"
    shouting.write_text("".join(w.capitalize() + "\n" for w in small_word_file.read_text().split()))
    out = tmp_path / "bigram.safetensors"
    train(["--family", "bigram", "--data", str(shouting), "--out", str(out), "--lowercase", "--no-progress"])
    trained = load_checkpoint(out)
    assert trained.data["lowercase"] is True and trained.reference["losses"]
    save_checkpoint(out, replace(trained, reference={}))
    assert add_reference(out, shouting).reference == trained.reference
