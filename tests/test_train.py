from pathlib import Path

import pytest
import torch

from model import train
from model.checkpoint import load_checkpoint
from model.data import build_windows, read_words, split_words


def test_training_lowers_loss_and_stores_metrics_that_reproduce(tiny_checkpoint: Path, small_word_file: Path):
    ckpt = load_checkpoint(tiny_checkpoint)
    model = ckpt.build_model()
    words = read_words(small_word_file)
    splits = split_words(words, ckpt.data["split_seed"], tuple(ckpt.data["split_fractions"]))
    for split in ("train", "val", "test"):
        x, y = build_windows(getattr(splits, split), ckpt.vocab, ckpt.config.block_size)
        assert train.evaluate(model, x, y) == pytest.approx(ckpt.metrics[f"{split}_loss"], abs=1e-5)
    uniform = torch.log(torch.tensor(float(ckpt.vocab.size))).item()
    assert ckpt.metrics["train_loss"] < uniform - 0.5  # learnt well beyond a uniform guess
    assert tiny_checkpoint.with_suffix(".png").stat().st_size > 10_000


def test_loop_loss_falls_and_schedule_decays():
    schedule = train.Schedule(steps=10, lr=0.1, lr_after=0.01)
    assert [schedule.lr_at(s) for s in (0, 4, 5, 9)] == [0.1, 0.1, 0.01, 0.01]
    assert train.Schedule(steps=10, decay_step=2).lr_at(2) == 0.01


def test_interrupt_writes_nothing(small_word_file: Path, tmp_path: Path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_loop", interrupted)
    out = tmp_path / "run" / "m.safetensors"
    args = ["--data", str(small_word_file), "--out", str(out), "--steps", "5", "--no-progress"]
    assert train.main(args) == 130
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_same_seed_trains_the_same_model(small_word_file: Path, tmp_path: Path):
    common = [
        "--data",
        str(small_word_file),
        "--steps",
        "50",
        "--n-hidden",
        "16",
        "--no-progress",
        "--device",
        "cpu",
    ]
    for name in ("a", "b"):
        assert train.main([*common, "--out", str(tmp_path / f"{name}.safetensors")]) == 0
    a, b = (load_checkpoint(tmp_path / f"{n}.safetensors") for n in "ab")
    for key, tensor in a.state_dict.items():
        torch.testing.assert_close(tensor, b.state_dict[key], rtol=0, atol=0)
