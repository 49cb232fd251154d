"""`--ema`: the parameters' moving average, checked against hand-computed averages."""

from pathlib import Path

import pytest
import torch
from torch import nn

from model import train
from model.checkpoint import load_checkpoint
from model.families import get_family
from model.training import loop
from model.training.averaging import WeightAverage
from model.training.examples import Sequences, evaluate
from model.vocab import Vocab


def test_the_average_of_three_steps_is_the_hand_computed_weighted_mean():
    layer = nn.Linear(1, 1, bias=False)
    average = WeightAverage(layer, decay=0.5)
    for value in (1.0, 2.0, 4.0):  # the weight after each of three "steps"
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
    # weights (1 - d) d^(k - i): 0.125, 0.25, 0.5, divided by their sum 0.875
    assert average.averages()[0].item() == pytest.approx((0.125 * 1 + 0.25 * 2 + 0.5 * 4) / 0.875)
    assert average.averages()[0].item() == pytest.approx(3.0)
    with average.applied():
        assert layer.weight.item() == pytest.approx(3.0)
    assert layer.weight.item() == 4.0  # the model's own weight is back after the block


@pytest.mark.parametrize("keep_best", [False, True])
def test_a_run_with_ema_ends_with_the_average_of_its_steps_weights(
    small_word_file: Path, monkeypatch, keep_best
):
    """The loop updates the average after every optimiser step; val measures it and the model ends
    with it (kept as the best val evaluation's weights, or as the last step's average)."""
    snapshots: list[list[torch.Tensor]] = []

    class Recording(loop._Optimiser):
        def step(self, loss: torch.Tensor, step: int) -> None:
            super().step(loss, step)
            snapshots.append([p.detach().clone() for p in self.params])

    monkeypatch.setattr(loop, "_Optimiser", Recording)
    words = small_word_file.read_text().split()[:200]
    vocab = Vocab.from_words(words)
    family = get_family("gru")
    model = family.build(
        family.config(vocab_size=vocab.size, n_embd=4, n_hidden=8), torch.Generator().manual_seed(0)
    )
    decay, steps = 0.8, 7
    recipe = family.recipe.with_(steps=steps, ema=decay, keep_best=keep_best, eval_every=steps)
    examples = Sequences.of(words, vocab)
    history = loop.train_loop(
        model, examples, recipe, torch.Generator().manual_seed(0), examples, progress=False
    )
    assert len(snapshots) == steps
    assert history.best_step == (steps if keep_best else None)
    assert history.val_points == [(steps, pytest.approx(evaluate(model, examples), abs=1e-6))]
    weights = [(1 - decay) * decay ** (steps - 1 - i) for i in range(steps)]
    for index, param in enumerate(model.parameters()):
        expected = sum(w * snap[index] for w, snap in zip(weights, snapshots, strict=True)) / sum(weights)
        torch.testing.assert_close(param.detach(), expected)
        assert not torch.allclose(param.detach(), snapshots[-1][index])  # not simply the last step's


def test_the_cli_records_ema_and_saves_other_weights_than_without_it(small_word_file: Path, tmp_path: Path):
    common = ["--family", "gru", "--data", str(small_word_file), "--steps", "120", "--eval-every", "40",
              "--n-embd", "8", "--n-hidden", "24", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert train.main([*common, "--ema", "0.95", "--out", str(tmp_path / "ema.safetensors")]) == 0
    assert train.main([*common, "--out", str(tmp_path / "plain.safetensors")]) == 0
    ema, plain = (load_checkpoint(tmp_path / f"{name}.safetensors") for name in ("ema", "plain"))
    assert ema.train_args["recipe"]["ema"] == 0.95 and "--ema 0.95" in ema.train_args["command"]
    assert plain.train_args["recipe"]["ema"] == 0.0
    assert ema.metrics["best_step"] in (40, 80, 120)
    assert not torch.equal(ema.state_dict["head.weight"], plain.state_dict["head.weight"])


def test_the_decay_must_be_below_one():
    with pytest.raises(SystemExit):
        train.parse_args(["--family", "gru", "--ema", "1.0"])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(nn.Linear(1, 1), 0.0)
