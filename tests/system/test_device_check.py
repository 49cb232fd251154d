"""The prepared accelerator check (`bench.device_check`), run here on the CPU against itself: the
harness must find no difference, and say so; without an accelerator `auto` checks nothing."""

import json
from pathlib import Path

import pytest
import torch

from bench import device_check

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def linked_weights(tmp_path: Path, names: list[str]) -> Path:
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in names:
        (weights / f"{name}.safetensors").symlink_to(WEIGHTS / f"{name}.safetensors")
    return weights


def test_the_cpu_against_itself_agrees_exactly(tmp_path):
    weights, out = linked_weights(tmp_path, ["names-mlp", "names-gru"]), tmp_path / "report.json"
    assert device_check.main(["--device", "cpu", "--weights", str(weights), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert sorted(report["models"]) == ["names-gru", "names-mlp"]
    for figures in report["models"].values():
        assert figures["max_prob_difference"] == 0.0 and figures["same_names"] == 1.0
        assert figures["batching"] == "exact" and figures["ok"]


def test_a_failing_check_exits_1(tmp_path):
    weights, out = linked_weights(tmp_path, ["names-gru"]), tmp_path / "report.json"
    argv = ["--device", "cpu", "--weights", str(weights), "--out", str(out), "--min-same", "1.01"]
    assert device_check.main(argv) == 1
    assert not json.loads(out.read_text())["models"]["names-gru"]["ok"]


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="an accelerator is here"
)
def test_auto_without_an_accelerator_checks_nothing(tmp_path, capsys):
    assert device_check.main(["--out", str(tmp_path / "r.json")]) == 2
    assert "no CUDA or MPS device" in capsys.readouterr().out
