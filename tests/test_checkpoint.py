import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model.checkpoint import (
    FORMAT_VERSION,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    ForeignCheckpointError,
    UnsupportedVersionError,
    load_checkpoint,
)
from model.hashing import word_hashes


def test_checkpoint_is_self_describing(tiny_checkpoint: Path, small_word_file: Path):
    ckpt = load_checkpoint(tiny_checkpoint)
    words = small_word_file.read_text().split()
    assert ckpt.vocab.alphabet == "." + "".join(sorted(set("".join(words))))
    assert ckpt.config.n_hidden == 64 and ckpt.config.block_size == 3
    assert set(ckpt.metrics) >= {"train_loss", "val_loss", "test_loss", "steps", "wall_seconds"}
    assert ckpt.data["word_count"] == len(words)
    assert ckpt.data["split_fractions"] == [0.8, 0.1, 0.1]
    assert ckpt.train_args["recipe"]["steps"] == 600
    assert ckpt.train_args["command"].startswith("python -m model.train --data ")
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
