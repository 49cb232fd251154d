"""A dense layer for NumPy serving steps: y = x @ W.T + b in float32, on a weight prepared once.

It runs oneDNN's linear (the `torch.ops.mkldnn` op that `torch.compile` uses on CPU) on the weight
packed into oneDNN's blocked layout at load time, with the bias added inside the kernel. Where the
op is missing (a torch built without oneDNN), it runs torch's addmm (MKL or another BLAS).

Why oneDNN: MKL picks its kernels by CPU vendor, oneDNN by instruction set. Measured on the
development machine (AMD EPYC with AVX-512, torch 2.13.0, one thread, a 256 -> 768 layer, best of
5 x 2,000 calls): `torch.mm` 99 us at 16 rows and 1,104 us at 256; oneDNN on the packed weight
45-54 us and 482-517 us. And it is batch-invariant over the whole serving range: a probe row's
output had the same bits alone and at a random position in batches of every size from 1 to 300
(and 512, 1,024, 4,096), with 1 and 2 threads, from 64 buffer offsets and on other threads, where
MKL's sgemm differed at 1-3 rows (and 6 with 2 threads). The start-up self-test
(`model.engine.invariance`) checks this again on every machine.
"""

from __future__ import annotations

import numpy as np
import torch

# The batch size the weight's layout is chosen for. Measured: 16 and 256 give the same layout and
# bits (at 1 row too); 1 gives one whose lone row differs from the same row in a batch.
PACK_FOR_ROWS = 16
# oneDNN builds (and keeps) a kernel for every batch size it meets, and memory grows with each:
# calls at every size from 1 to 256 added 169 MB of RSS (85 MB with its primitive cache off), at
# the 31 sizes 1-16 and 32-256 in steps of 16 21 MB. So a call runs at one of 48 sizes (30 MB): up
# to `EXACT_ROWS` rows as they are, more rounded up to 4 significant bits (at most 12.5 % padding
# rows), at most `MAX_ROWS` at once. A row's bits do not depend on its batch (above), so this only
# costs the padding rows' arithmetic.
EXACT_ROWS = 16
MAX_ROWS = 256


class Dense:
    """y = x @ weight.T + bias for float32 x[rows, in] (NumPy in, NumPy out)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight = weight.detach().to("cpu", torch.float32).contiguous()
        self.bias = bias.detach().to("cpu", torch.float32).contiguous()
        self.packed = _packed(self.weight)

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.packed is None:
            return torch.addmm(self.bias, torch.from_numpy(np.ascontiguousarray(x)), self.weight.T).numpy()
        rows = len(x)
        if rows > MAX_ROWS:
            return np.concatenate([self(x[i : i + MAX_ROWS]) for i in range(0, rows, MAX_ROWS)])
        width = padded_rows(rows)
        if width > rows:
            x = np.concatenate([x, np.zeros((width - rows, x.shape[1]), dtype=np.float32)])
        inputs = torch.from_numpy(np.ascontiguousarray(x))
        out = torch.ops.mkldnn._linear_pointwise(inputs, self.packed, self.bias, "none", [], "")
        return out.numpy()[:rows]


def padded_rows(rows: int) -> int:
    """The batch size a call of `rows` (at most `MAX_ROWS`) rows runs at."""
    if rows <= EXACT_ROWS:
        return rows
    step = 1 << (rows.bit_length() - 4)
    return -(-rows // step) * step


def _packed(weight: torch.Tensor) -> torch.Tensor | None:
    """The weight in oneDNN's layout, or None where this torch has no oneDNN linear."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, PACK_FOR_ROWS)
    except (AttributeError, RuntimeError):
        return None
