"""`--teachers` / `--distill-weight`: the loss against a hand computation, the ensemble's loss,
the recorded teachers and the teachers that are refused."""

import hashlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model import train
from model.checkpoint import load_checkpoint
from model.data import IGNORE_TARGET, read_words, split_words
from model.families import build_model, get_family
from model.training.distill import distillation_loss, ensemble_loss, ensemble_probabilities
from model.training.examples import Sequences
from model.vocab import Vocab


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn((2, 4, 5), generator=g)
    soft = torch.softmax(torch.randn((2, 4, 5), generator=g), dim=-1)
    targets = torch.tensor([[1, 3, 0, IGNORE_TARGET], [4, 0, IGNORE_TARGET, IGNORE_TARGET]])
    return logits, targets, soft


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_the_loss_is_the_hand_computed_mix_over_the_positions_that_are_not_padding(weight):
    logits, targets, soft = _batch()
    hard, soft_ce = [], []
    for row in range(2):
        for t in range(4):
            if targets[row, t] == IGNORE_TARGET:
                continue
            log_p = F.log_softmax(logits[row, t], dim=0)
            hard.append(-log_p[targets[row, t]].item())
            soft_ce.append(-sum(soft[row, t, c].item() * log_p[c].item() for c in range(5)))
    assert len(hard) == 5
    expected = (1 - weight) * sum(hard) / 5 + weight * sum(soft_ce) / 5
    assert distillation_loss(logits, targets, soft, weight).item() == pytest.approx(expected, rel=1e-6)
    flat_ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_TARGET)
    if weight == 0.0:
        assert distillation_loss(logits, targets, soft, weight).item() == pytest.approx(flat_ce.item())


def test_padding_positions_change_nothing():
    logits, targets, soft = _batch()
    before = distillation_loss(logits, targets, soft, 0.6)
    pad = targets == IGNORE_TARGET
    logits2, soft2 = logits.clone(), soft.clone()
    logits2[pad] = 50.0 * torch.randn_like(logits2[pad])
    soft2[pad] = torch.tensor([1.0, 0, 0, 0, 0])
    assert distillation_loss(logits2, targets, soft2, 0.6).item() == pytest.approx(before.item(), rel=1e-6)
    logits2[0, 0, 2] += 1.0  # a real position does count
    assert distillation_loss(logits2, targets, soft2, 0.6).item() != pytest.approx(before.item(), rel=1e-6)


def test_the_ensemble_averages_probabilities_not_logits(small_word_file: Path):
    words = small_word_file.read_text().split()[:40]
    vocab = Vocab.from_words(words)
    family = get_family("gru")
    config = family.config(vocab_size=vocab.size, n_embd=4, n_hidden=8)
    models = [family.build(config, torch.Generator().manual_seed(s)).eval() for s in (1, 2)]
    examples = Sequences.of(words, vocab)
    total, count = 0.0, 0
    with torch.no_grad():
        logits = [m.sequence_logits(examples.inputs) for m in models]
    for row, word in enumerate(words):
        for t, target in enumerate([*vocab.encode(word), 0]):
            p = sum(torch.softmax(lg[row, t].double(), 0)[target].item() for lg in logits) / 2
            total -= math.log(p)
            count += 1
    assert ensemble_loss(models, examples) == pytest.approx(total / count, rel=1e-5)
    probs = ensemble_probabilities(models, examples.inputs, chunk=37)  # in several chunks
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:2]))


def _teachers(words: Path, folder: Path, split_seed: int = 42) -> list[Path]:
    paths = []
    for seed in (1, 2):
        path = folder / f"teacher-{seed}-{split_seed}.safetensors"
        args = ["--family", "gru", "--data", str(words), "--out", str(path), "--steps", "40",
                "--eval-every", "20", "--n-embd", "8", "--n-hidden", "16", "--seed", str(seed),
                "--split-seed", str(split_seed), "--no-progress", "--device", "cpu"]  # fmt: skip
        assert train.main(args) == 0
        paths.append(path)
    return paths


STUDENT = ["--family", "gru", "--steps", "40", "--eval-every", "20", "--n-embd", "8", "--n-hidden", "12",
           "--no-progress", "--device", "cpu"]  # fmt: skip


def test_the_student_records_its_teachers_sha256_and_commands(small_word_file: Path, tmp_path: Path):
    teachers = _teachers(small_word_file, tmp_path)
    out = tmp_path / "student.safetensors"
    spec = ",".join(map(str, teachers))
    args = [
        *STUDENT,
        "--data",
        str(small_word_file),
        "--out",
        str(out),
        "--teachers",
        spec,
        "--distill-weight",
        "0.7",
    ]
    assert train.main(args) == 0
    student = load_checkpoint(out)
    recorded = student.train_args["teachers"]
    assert f"--teachers {spec} --distill-weight 0.7" in student.train_args["command"]
    assert student.train_args["recipe"]["distill_weight"] == 0.7
    for path, entry in zip(teachers, recorded["models"], strict=True):
        assert entry["path"] == str(path)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["command"] == load_checkpoint(path).train_args["command"]
    models = [build_model(load_checkpoint(path)) for path in teachers]  # in eval mode
    val = split_words(read_words(small_word_file), 42).val
    expected = ensemble_loss(models, Sequences.of(val, student.vocab))
    assert recorded["ensemble_val_loss"] == pytest.approx(expected, rel=1e-6)

    grand = tmp_path / "grand.safetensors"  # a distilled teacher brings its own teachers along
    args = [
        *STUDENT,
        "--data",
        str(small_word_file),
        "--out",
        str(grand),
        "--teachers",
        str(out),
        "--distill-weight",
        "1",
    ]
    assert train.main(args) == 0
    assert load_checkpoint(grand).train_args["teachers"]["models"][0]["teachers"] == recorded
    assert "teachers" not in recorded["models"][0]

    plain = tmp_path / "plain.safetensors"  # the same student without teachers learns other weights
    assert train.main([*STUDENT, "--data", str(small_word_file), "--out", str(plain)]) == 0
    assert "teachers" not in load_checkpoint(plain).train_args
    assert not torch.equal(
        load_checkpoint(plain).state_dict["head.weight"], student.state_dict["head.weight"]
    )


def test_teachers_of_another_split_or_without_a_weight_are_refused(small_word_file: Path, tmp_path: Path):
    other = _teachers(small_word_file, tmp_path, split_seed=7)
    args = [*STUDENT, "--data", str(small_word_file), "--out", str(tmp_path / "s.safetensors")]
    with pytest.raises(SystemExit, match="split_seed 7"):
        train.main([*args, "--teachers", str(other[0]), "--distill-weight", "0.5"])
    with pytest.raises(SystemExit):
        train.parse_args([*args, "--teachers", str(other[0])])  # no --distill-weight
    with pytest.raises(SystemExit):
        train.parse_args([*args, "--distill-weight", "0.5"])  # no teachers
    with pytest.raises(SystemExit):
        train.parse_args(["--family", "mlp", "--teachers", str(other[0]), "--distill-weight", "0.5"])
    assert not (tmp_path / "s.safetensors").exists()
