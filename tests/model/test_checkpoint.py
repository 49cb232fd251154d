import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    ForeignCheckpointError,
    UnsupportedVersionError,
    load_checkpoint,
    save_checkpoint,
)
from model.families import build_model
from model.hashing import word_hashes


def test_checkpoint_is_self_describing(tiny_checkpoint: Path, small_word_file: Path):
    ckpt = load_checkpoint(tiny_checkpoint)
    words = small_word_file.read_text().split()
    assert ckpt.vocab.alphabet == "." + "".join(sorted(set("".join(words))))
    assert ckpt.config["n_hidden"] == 64 and ckpt.config["block_size"] == 3
    assert set(ckpt.metrics) >= {"train_loss", "val_loss", "test_loss", "steps", "wall_seconds"}
    assert ckpt.data["word_count"] == len(words)
    assert ckpt.data["split_fractions"] == [0.8, 0.1, 0.1]
    assert ckpt.train_args["recipe"]["steps"] == 600
    assert ckpt.train_args["command"].startswith("python -m model.train --family mlp --data ")
    assert ckpt.known_word_hashes.tolist() == sorted(set(word_hashes(words).tolist()))


def _rewrite_metadata(src: Path, dst: Path, **changes: str) -> None:
    with safe_open(str(src), framework="pt") as f:
        metadata = {**f.metadata(), **changes}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(dst), metadata=metadata)


def test_missing_file(tmp_path: Path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file(tiny_checkpoint: Path, tmp_path: Path):
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(tiny_checkpoint.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        load_checkpoint(bad)


def test_not_safetensors_at_all(tmp_path: Path):
    bad = tmp_path / "pickle.safetensors"
    bad.write_bytes(b"\x80\x04\x95 not a safetensors file")
    with pytest.raises(CorruptCheckpointError, match="not a readable safetensors"):
        load_checkpoint(bad)


def test_foreign_safetensors_file(tmp_path: Path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ForeignCheckpointError, match="not a namegen checkpoint"):
        load_checkpoint(foreign)


def test_newer_format_version(tiny_checkpoint: Path, tmp_path: Path):
    newer = tmp_path / "newer.safetensors"
    _rewrite_metadata(tiny_checkpoint, newer, format_version=str(FORMAT_VERSION + 1))
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        load_checkpoint(newer)


def test_older_format_version(tiny_checkpoint: Path, tmp_path: Path):
    older = tmp_path / "older.safetensors"
    _rewrite_metadata(tiny_checkpoint, older, format_version=str(FORMAT_VERSION - 1))
    with pytest.raises(UnsupportedVersionError, match="retrain"):
        load_checkpoint(older)


def test_metadata_inconsistent_with_tensors(tiny_checkpoint: Path, tmp_path: Path):
    bad = tmp_path / "bad.safetensors"
    model = json.dumps(
        {"kind": "mlp", "config": {"vocab_size": 9, "block_size": 3, "n_embd": 10, "n_hidden": 64}}
    )
    _rewrite_metadata(tiny_checkpoint, bad, model=model)
    with pytest.raises(CorruptCheckpointError, match="inconsistent"):
        load_checkpoint(bad)


def _resaved(src: Path, dst: Path, **changes) -> Path:
    """`src` with some fields changed, written by save_checkpoint (so with a valid digest)."""
    ckpt = load_checkpoint(src)
    for name, value in changes.items():
        setattr(ckpt, name, value)
    save_checkpoint(dst, ckpt)
    return dst


def test_edited_metadata_breaks_the_digest(tiny_checkpoint: Path, tmp_path: Path):
    alphabet = load_checkpoint(tiny_checkpoint).vocab.alphabet
    permuted = alphabet[0] + alphabet[1:][::-1]
    _rewrite_metadata(tiny_checkpoint, tmp_path / "p.safetensors", alphabet=permuted)
    with pytest.raises(CorruptCheckpointError, match="digest does not match"):
        load_checkpoint(tmp_path / "p.safetensors")


def test_non_finite_weights_are_refused(tiny_checkpoint: Path, tmp_path: Path):
    state = dict(load_checkpoint(tiny_checkpoint).state_dict)
    state["hidden.weight"] = state["hidden.weight"].clone()
    state["hidden.weight"][0, 0] = float("nan")
    path = _resaved(tiny_checkpoint, tmp_path / "nan.safetensors", state_dict=state)
    with pytest.raises(CorruptCheckpointError, match=r"'hidden\.weight' holds NaN or infinite values"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "hashes,message",
    [
        (torch.zeros(0, dtype=torch.int64), "non-empty 1-D int64"),
        (torch.ones(5, dtype=torch.float32), "non-empty 1-D int64"),
        (torch.ones(2, 3, dtype=torch.int64), "non-empty 1-D int64"),
        (torch.tensor([3, 2, 1]), "sorted and distinct"),
    ],
)
def test_bad_word_hashes_are_refused(tiny_checkpoint: Path, tmp_path: Path, hashes, message):
    path = _resaved(tiny_checkpoint, tmp_path / "h.safetensors", known_word_hashes=hashes)
    with pytest.raises(CorruptCheckpointError, match=message):
        load_checkpoint(path)


def test_shapes_that_do_not_fit_the_config_are_refused_naming_the_file(tiny_checkpoint: Path, tmp_path: Path):
    config = {**load_checkpoint(tiny_checkpoint).config, "block_size": 4}
    path = _resaved(tiny_checkpoint, tmp_path / "shape.safetensors", config=config)
    with pytest.raises(CorruptCheckpointError, match=f"checkpoint {path} is inconsistent: .*size mismatch"):
        build_model(load_checkpoint(path))


def test_unknown_family_is_refused_naming_the_file(tiny_checkpoint: Path, tmp_path: Path):
    path = _resaved(tiny_checkpoint, tmp_path / "kind.safetensors", kind="lstm")
    with pytest.raises(CorruptCheckpointError, match=f"{path}.*unknown model family 'lstm'"):
        build_model(load_checkpoint(path))


def test_a_directory_and_an_unreadable_file_say_what_they_are(tmp_path: Path, tiny_checkpoint: Path):
    with pytest.raises(CheckpointNotFoundError, match="not a file"):
        load_checkpoint(tmp_path)
    locked = tmp_path / "locked.safetensors"
    locked.write_bytes(tiny_checkpoint.read_bytes())
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: nothing to check here
        pytest.skip("running as root: permissions do not apply")
    with pytest.raises(CheckpointError, match="cannot be read: Permission denied"):
        load_checkpoint(locked)
