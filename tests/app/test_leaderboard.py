"""`make leaderboard` on tiny checkpoints: one row per checkpoint, the default marked, a plot."""

import shutil

from bench import leaderboard
from model import train
from model.checkpoint import load_checkpoint
from model.data import read_words
from model.engine.language_model import LanguageModel


def test_leaderboard_ranks_every_checkpoint_and_marks_the_default(tiny_checkpoint, small_word_file, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(tiny_checkpoint, weights / "tiny-mlp.safetensors")
    gru = weights / "tiny-gru.safetensors"
    args = ["--family", "gru", "--data", str(small_word_file), "--out", str(gru), "--steps", "30",
            "--eval-every", "10", "--n-embd", "8", "--n-hidden", "16", "--no-progress"]  # fmt: skip
    assert train.main(args) == 0
    out = tmp_path / "docs" / "leaderboard.md"
    assert (
        leaderboard.main(["--weights", str(weights), "--out", str(out), "--repeats", "1", "--bulk", "200"])
        == 0
    )
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "tiny-" in line]
    assert len(rows) == 2
    vals = {
        name: load_checkpoint(weights / f"{name}.safetensors").metrics["val_loss"]
        for name in ("tiny-mlp", "tiny-gru")
    }
    best = min(vals, key=vals.get)
    assert rows[0].startswith(f"| **{best}** |")  # best val first, and it is the default
    assert f"The default model (best on val) is **{best}**." in text
    known = set(small_word_file.read_text().split())
    for row in rows:
        samples = row.rstrip(" |").rsplit("| ", 1)[1].split(", ")
        assert samples and not known & set(samples)  # the showcase never prints a training name
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "python -m model.train --family gru" in text


def test_a_conditional_model_gets_its_condition_figures_beside_the_best_plain_model(
    gender_checkpoint, tiny_checkpoint
):
    path, table = gender_checkpoint
    models = {
        "tiny-gender": LanguageModel.from_checkpoint(path, "cpu"),
        "tiny-plain": LanguageModel.from_checkpoint(tiny_checkpoint, "cpu"),
    }
    quality = leaderboard.condition_rows(models, read_words(path.parent / "words.txt"), table)
    assert list(quality) == ["tiny-gender"] and quality["tiny-gender"]["baseline"] == "tiny-plain"
    test = quality["tiny-gender"]["test"]
    assert 0.5 < test.balanced_accuracy <= 1 and 0 <= test.sample_match["male"] <= 1
    lines = leaderboard.render_conditions(quality, None)
    (row,) = [line for line in lines if line.startswith("| tiny-gender |")]
    assert f"{test.balanced_accuracy:.1%}" in row and f"{test.nll['female']:.4f}" in row
    missing = leaderboard.render_conditions({}, "the word list x is absent")
    assert "Not measured here: the word list x is absent." in missing
