"""Where next-character distributions come from: the forward pass, or a table of all of them.

With block size 3 and 27 characters there are only 27^3 = 19,683 contexts, so the model's whole
next-character distribution is computed once, exactly, by one forward pass at load time; sampling
and scoring then become lookups. Bigger models (more entries than `max_table_entries`) keep
calling the forward pass. Both give the same numbers: the table IS the forward pass's output.
"""

from __future__ import annotations

import numpy as np
import torch

from model.families.mlp import MLP

DEFAULT_MAX_TABLE_ENTRIES = 1 << 22  # 4M float64 = 32 MiB per table


class ForwardPass:
    """Log-probabilities straight from the model, one batched forward per call."""

    def __init__(self, model: MLP, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.device = device
        self.vocab_size = model.config.vocab_size

    def log_probs(self, contexts: np.ndarray) -> np.ndarray:
        """log p(next | context) as float64[n, vocab] for contexts int64[n, block_size]."""
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(contexts).to(self.device))
            return torch.log_softmax(logits, dim=-1).to("cpu", torch.float64).numpy()


class ContextTable:
    """Every context's log-probabilities, computed once by `forward`, looked up by context code.

    A context's code is its ids read as a base-vocab_size number: appending id j to the context
    with code c gives code (c * V + j) % V**block_size.
    """

    chunk = 4096  # contexts per forward pass while building: bounds the peak memory

    def __init__(self, forward: ForwardPass, block_size: int) -> None:
        v = self.vocab_size = forward.vocab_size
        self.contexts = v**block_size
        every_context = np.ascontiguousarray(np.indices((v,) * block_size).reshape(block_size, -1).T)
        self.table = np.concatenate([
            forward.log_probs(every_context[start : start + self.chunk])
            for start in range(0, self.contexts, self.chunk)
        ])  # fmt: skip
        self.cdf_table = cdf_from_log_probs(self.table)
        self.cdf_rows: list[list[float]] = self.cdf_table.tolist()  # for loops over a few names
        self._first_rows: dict[tuple[int, bool], list[float]] = {}

    def first_cdf_row(self, code: int, forbid_end: bool) -> list[float]:
        """The CDF row that starts names after context `code`, without the end token on request
        (memoised: every call with the same prefix starts alike)."""
        if (code, forbid_end) not in self._first_rows:
            row = cdf_from_log_probs(self.table[code : code + 1], forbid=0 if forbid_end else None)
            self._first_rows[code, forbid_end] = row[0].tolist()
        return self._first_rows[code, forbid_end]

    def code(self, context: list[int]) -> int:
        code = 0
        for idx in context:
            code = code * self.vocab_size + idx
        return code

    def next_code(self, code: int, idx: int) -> int:
        return (code * self.vocab_size + idx) % self.contexts


def build_source(
    model: MLP, device: torch.device, dtype: torch.dtype, max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES
) -> ForwardPass | ContextTable:
    forward = ForwardPass(model, device, dtype)
    config = model.config
    if config.vocab_size ** (config.block_size + 1) <= max_table_entries:
        return ContextTable(forward, config.block_size)
    return forward


def cdf_from_log_probs(
    log_probs: np.ndarray, temperature: float = 1.0, top_k: int | None = None, forbid: int | None = None
) -> np.ndarray:
    """Row-wise CDF of softmax(log_probs / temperature), keeping only the top_k likeliest entries
    and never the column `forbid`. The last column is exactly 1, so a uniform draw in (0, 1]
    always lands on an entry of positive probability."""
    scaled = log_probs / temperature if temperature != 1.0 else log_probs.copy()
    if forbid is not None:
        scaled[:, forbid] = -np.inf
    if top_k is not None and top_k < scaled.shape[1]:
        kth = np.partition(scaled, -top_k, axis=1)[:, -top_k, None]
        scaled[scaled < kth] = -np.inf
    weights = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    return cdf / cdf[:, -1:]
