"""`make leaderboard` on tiny checkpoints: one row per checkpoint, the default marked, a plot."""

import shutil

from bench import leaderboard
from model import train
from model.checkpoint import load_checkpoint


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
