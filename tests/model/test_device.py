"""'auto' prefers CUDA, then MPS, then the CPU; an unavailable or unknown device is a clear error."""

import pytest
import torch

from model.device import resolve_device


@pytest.mark.parametrize(
    "cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_an_unavailable_accelerator_is_named(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"'{name}' was asked for but .* not available"):
        resolve_device(name)


def test_unknown_device_names_the_choices():
    with pytest.raises(ValueError, match="one of auto, cpu, cuda, mps, got 'tpu'"):
        resolve_device("tpu")
