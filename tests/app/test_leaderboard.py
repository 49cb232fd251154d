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
    run = ["--weights", str(weights), "--out", str(out), "--repeats", "1", "--bulk", "200"]
    assert leaderboard.main([*run, "--data", str(small_word_file)]) == 0
    text = out.read_text()
    main_table = text.split("## Sample quality beyond NLL")[0]
    rows = [line for line in main_table.splitlines() if line.startswith("| ") and "tiny-" in line]
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
    # sample quality against the tiny list's test names: a floor row, then one row per model
    section = text.split("## Sample quality beyond NLL", 1)[1].split("## Training commands")[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert table[0].startswith("| real training names (floor) | 0.0% |")  # known names: none novel
    assert [line.split(" | ")[0] for line in table[1:]] == [
        row.split(" | ")[0].replace("*", "") for row in rows
    ]
    for line in table:
        cells = line.strip("| ").split(" | ")
        assert len(cells) == 8 and 0 <= float(cells[3]) <= 1 and 0 <= float(cells[4]) <= 0.7  # TV, JS
    # a word list the checkpoints were not trained from, or none: the section says why
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\n")
    assert leaderboard.main([*run, "--data", str(other)]) == 0
    assert (
        "Not measured here: no model was trained on this word list (tiny-gru, tiny-mlp)." in out.read_text()
    )
    assert leaderboard.main([*run, "--data", str(tmp_path / "absent.txt")]) == 0
    assert f"Not measured here: the word list {tmp_path / 'absent.txt'} is absent." in out.read_text()


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
