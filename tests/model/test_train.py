from itertools import pairwise
from pathlib import Path

import pytest
import torch

from model import train
from model.checkpoint import load_checkpoint
from model.data import CleanedWords, WordListError, clean_words, expand_alphabet, read_words, split_words
from model.engine.language_model import LanguageModel
from model.families import build_model, family_kinds, get_family
from model.recipe import Recipe
from model.training import run
from model.training.examples import Sequences, Windows, evaluate


def test_training_lowers_loss_and_stores_metrics_that_reproduce(tiny_checkpoint: Path, small_word_file: Path):
    ckpt = load_checkpoint(tiny_checkpoint)
    model = build_model(ckpt)
    words = read_words(small_word_file)
    splits = split_words(words, ckpt.data["split_seed"], tuple(ckpt.data["split_fractions"]))
    for split in ("train", "val", "test"):
        examples = Windows.of(getattr(splits, split), ckpt.vocab, ckpt.config["block_size"])
        assert evaluate(model, examples) == pytest.approx(ckpt.metrics[f"{split}_loss"], abs=1e-5)
    uniform = torch.log(torch.tensor(float(ckpt.vocab.size))).item()
    assert ckpt.metrics["train_loss"] < uniform - 0.5  # learnt well beyond a uniform guess
    assert tiny_checkpoint.with_suffix(".png").stat().st_size > 10_000


def test_schedules():
    sgd = Recipe(optimizer="sgd", steps=10, lr=0.1, lr_after=0.01)
    assert [sgd.lr_at(s) for s in (0, 4, 5, 9)] == [0.1, 0.1, 0.01, 0.01]
    assert sgd.with_(decay_at=0.2).lr_at(2) == 0.01
    cosine = Recipe(optimizer="adamw", steps=11, lr=1e-3, lr_after=1e-4)
    lrs = [cosine.lr_at(s) for s in range(11)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert lrs[5] == pytest.approx((1e-3 + 1e-4) / 2)
    assert all(a > b for a, b in pairwise(lrs))


def test_window_and_sequence_examples_measure_the_same_predictions(small_word_file: Path):
    """A window model scored on whole names equals the same model scored on its windows."""
    words = read_words(small_word_file)[:50]
    ckpt_family = get_family("mlp")
    from model.vocab import Vocab

    vocab = Vocab.from_words(words)
    model = ckpt_family.build(ckpt_family.config(vocab_size=vocab.size), torch.Generator().manual_seed(0))
    windows, sequences = Windows.of(words, vocab, 3), Sequences.of(words, vocab)
    assert windows.predictions == sequences.predictions == sum(len(w) + 1 for w in words)
    assert evaluate(model, windows) == pytest.approx(evaluate(model, sequences), abs=1e-5)


def test_interrupt_writes_nothing(small_word_file: Path, tmp_path: Path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "train_loop", interrupted)
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


SMALL = {
    "bigram": [],
    "mlp": ["--n-hidden", "32"],
    "wavenet": ["--n-embd", "8", "--n-hidden", "16"],
    "gru": ["--n-embd", "8", "--n-hidden", "24"],
    "transformer": ["--n-embd", "16", "--n-layer", "1", "--n-head", "2"],
}


@pytest.mark.parametrize("kind", family_kinds())
def test_every_family_trains_to_a_loadable_checkpoint_that_beats_uniform(kind, small_word_file, tmp_path):
    out = tmp_path / f"{kind}.safetensors"
    args = ["--family", kind, "--data", str(small_word_file), "--out", str(out), "--steps", "150",
            "--eval-every", "50", "--no-progress", "--device", "cpu", *SMALL[kind]]  # fmt: skip
    assert train.main(args) == 0
    model = LanguageModel.from_checkpoint(out, device="cpu")
    metrics = model.checkpoint.metrics
    uniform = torch.log(torch.tensor(float(model.vocab.size))).item()
    assert metrics["val_loss"] < uniform - 0.5
    assert model.kind == kind and model.checkpoint.train_args["family"] == kind
    assert f"--family {kind}" in model.checkpoint.train_args["command"]
    assert out.with_suffix(".png").is_file()
    if kind != "bigram":  # the best val evaluation's weights are kept (the mlp's recipe keeps the last)
        assert metrics["best_step"] is None if kind == "mlp" else metrics["best_step"] in (50, 100, 150)


def test_out_defaults_outside_weights_and_help_shows_defaults(capsys):
    args, family, _, recipe = train.parse_args(["--family", "gru"])
    assert args.out == Path("runs/names-gru.safetensors") and family.kind == "gru"
    assert recipe == get_family("gru").recipe
    with pytest.raises(SystemExit):
        train.parse_args(["--family", "gru", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "(default: 256)" in shown and "(default: 0.3)" in shown  # hidden size, dropout


@pytest.mark.parametrize("kind", family_kinds())
def test_help_explains_every_flag_in_words_and_defaults_to_the_served_family(kind, capsys):
    assert train.parse_args([])[1].kind == train.DEFAULT_FAMILY
    parser = train.build_parser(get_family(kind))
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            words = action.dest.replace("_", " ")
            assert action.help and action.help != words, f"--{action.dest} has no explanation"


def test_a_word_list_with_other_characters_is_reported_lowercased_or_held_to_an_alphabet(tmp_path, capsys):
    path = tmp_path / "mixed.txt"
    path.write_text("Anna\nanna\nbob\no'brien\nzoë\nmary-jane\nkim\nlee\nroy\nsam\n", encoding="utf-8")
    common = ["--family", "bigram", "--data", str(path), "--no-progress"]
    assert train.main([*common, "--out", str(tmp_path / "as-is.safetensors")]) == 0
    said = capsys.readouterr().err
    assert "'A' 1" in said and "'a' " in said  # every character, with its count
    assert "warning: 4 characters outside a-z: \"'\" '-' 'A' 'ë'" in said
    assert "will not lowercase its input" in said
    as_is = load_checkpoint(tmp_path / "as-is.safetensors")
    assert "A" in as_is.vocab.alphabet and "lowercase" not in as_is.data

    with pytest.raises(SystemExit, match="outside the alphabet 'abcdefghijklmnopqrstuvwxyz'"):
        train.main([*common, "--lowercase", "--alphabet", "a-z", "--out", str(tmp_path / "x.safetensors")])

    out = tmp_path / "clean.safetensors"
    assert (
        train.main([*common, "--lowercase", "--alphabet", "a-z", "--on-other", "drop", "--out", str(out)])
        == 0
    )
    clean = load_checkpoint(out)
    assert clean.vocab.alphabet == "." + "".join(sorted(set("annabobkimleeroysam")))
    assert clean.data["word_count"] == 6  # Anna folds into anna; o'brien, zoë, mary-jane left out whole
    assert {k: clean.data[k] for k in ("lowercase", "alphabet", "dropped_words")} == {
        "lowercase": True,
        "alphabet": "a-z",
        "dropped_words": 3,
    }
    assert "left out 3 words" in capsys.readouterr().err


def test_alphabet_specs_and_cleaning():
    assert expand_alphabet("a-e") == "abcde" and expand_alphabet("a-c'-") == "abc'-"
    with pytest.raises(WordListError, match="backwards"):
        expand_alphabet("z-a")
    cleaned = clean_words(["Ada", "ada", "Éva", "bo"], lowercase=True, alphabet="abdo", drop_others=True)
    assert cleaned == CleanedWords(["ada", "bo"], ["éva"], ["é", "v"])


@pytest.mark.parametrize(
    "bad", [["--steps", "0"], ["--dropout", "1.0", "--family", "gru"], ["--split", "0.5", "0.5", "0.5"]]
)
def test_bad_flags_are_refused(bad):
    with pytest.raises(SystemExit):
        train.parse_args(bad)
