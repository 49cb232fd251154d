"""The dense layer of the NumPy serving steps: what it computes, on oneDNN and without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.families.dense import EXACT_ROWS, MAX_ROWS, Dense, padded_rows


@pytest.fixture
def layer() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(795, 256, generator=g) * 0.1, torch.randn(795, generator=g)


@pytest.mark.parametrize("rows", [1, 4, 16, 300])
def test_it_computes_x_times_the_weight_plus_the_bias(layer, rows):
    weight, bias = layer
    x = np.random.default_rng(rows).standard_normal((rows, 256)).astype(np.float32)
    out = Dense(weight, bias)(x)
    assert out.dtype == np.float32 and out.shape == (rows, 795)
    np.testing.assert_allclose(out, F.linear(torch.from_numpy(x), weight, bias).numpy(), rtol=1e-5, atol=1e-5)


def test_the_weight_is_packed_for_onednn_where_torch_has_it(layer):
    assert (Dense(*layer).packed is not None) == torch.backends.mkldnn.is_available()


def test_without_onednn_it_falls_back_to_addmm(layer, monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    weight, bias = layer
    fallback = Dense(weight, bias)
    assert fallback.packed is None
    x = np.random.default_rng(1).standard_normal((8, 256)).astype(np.float32)
    expected = (torch.from_numpy(x) @ weight.T + bias).numpy()
    np.testing.assert_allclose(fallback(x), expected, rtol=1e-5, atol=1e-5)


def test_a_strided_input_gives_the_bits_of_a_contiguous_one(layer):
    x = np.random.default_rng(2).standard_normal((16, 512)).astype(np.float32)
    layer_ = Dense(*layer)
    assert layer_(x[:, ::2]).tobytes() == layer_(np.ascontiguousarray(x[:, ::2])).tobytes()


def test_calls_run_at_few_batch_sizes_with_little_padding():
    sizes = [padded_rows(rows) for rows in range(1, MAX_ROWS + 1)]
    assert sizes[:EXACT_ROWS] == list(range(1, EXACT_ROWS + 1))  # small calls as they are
    assert all(rows <= size <= rows * 1.125 for rows, size in enumerate(sizes, start=1))
    assert len(set(sizes)) <= 48 and sizes[-1] == MAX_ROWS


@pytest.mark.parametrize("rows", [17, 255, 700])
def test_padded_and_split_calls_give_each_row_what_a_call_at_a_kernel_size_gives(layer, rows):
    """Padding rows to a kernel size and splitting past `MAX_ROWS` only add or cut rows: every row
    gets the bits of the same row computed in a call of exactly that size."""
    layer_ = Dense(*layer)
    x = np.random.default_rng(rows).standard_normal((rows, 256)).astype(np.float32)
    out = layer_(x)
    assert out.shape == (rows, 795)
    for start in range(0, rows, MAX_ROWS):
        part = x[start : start + MAX_ROWS]
        exact = np.zeros((padded_rows(len(part)), 256), dtype=np.float32)
        exact[: len(part)] = part
        assert layer_(exact)[: len(part)].tobytes() == out[start : start + len(part)].tobytes()
