"""The facade the service uses: a checkpoint on a device, answering sample / distribution / loss.

Each call is text -> ids -> next-character log-probabilities -> numbers; nothing here knows HTTP.
The log-probabilities come from a table of every context built once at load time when the model
is small enough (exactly the forward pass's numbers), else from the forward pass itself.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import Checkpoint, load_checkpoint
from model.data import build_windows
from model.device import resolve_device
from model.distributions import DEFAULT_MAX_TABLE_ENTRIES, ContextTable, build_source
from model.families.base import count_parameters
from model.hashing import contains, contains_one, word_hash, word_hashes
from model.sampler import (
    ForwardSteps,
    Shaping,
    StreamKeys,
    TableSteps,
    sample_rows_python,
    sample_rows_vectorised,
)
from model.vocab import BOUNDARY

ARRAY_HASHING_MIN_NAMES = 8  # fewer names are hashed one by one (cheaper than array set-up)


@dataclass(frozen=True)
class WordScore:
    """How the model scores one word: each prediction (its characters, then the end token)."""

    word: str
    targets: str  # the predicted characters: the word followed by '.'
    probs: list[float]
    nlls: list[float]

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood in nats per prediction."""
        return sum(self.nlls) / len(self.nlls)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


class LanguageModel:
    # Up to this many names a plain loop over rows beats array operations, whose per-call overhead
    # is paid at every step (measured: equal at 64 names, 708 vs 536 us at 128, 180 vs 515 at 16)
    python_sampling_max_n = 64

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device,
        name: str = "model",
        max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES,
    ) -> None:
        self.checkpoint = checkpoint
        self.vocab = checkpoint.vocab
        self.config = checkpoint.config
        self.device = device
        self.name = name
        # float64 (MPS has none: float32 there) so a word's numbers do not depend on its batch
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.model = checkpoint.build_model(device).to(dtype)
        self.parameter_count = count_parameters(self.model)
        self.source = build_source(self.model, device, dtype, max_table_entries)
        self._known_hashes = np.unique(checkpoint.known_word_hashes.numpy())  # sorted for lookups

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", **kwargs) -> LanguageModel:
        path = Path(path)
        return cls(load_checkpoint(path), resolve_device(device), name=path.stem, **kwargs)

    @property
    def uses_table(self) -> bool:
        return isinstance(self.source, ContextTable)

    def normalise(self, text: str) -> str:
        return self.vocab.normalise(text)

    def _context(self, prefix: str) -> list[int]:
        """The last block_size ids before the next character, left-padded with '.'."""
        ids = [0] * self.config.block_size + self.vocab.encode(prefix)
        return ids[-self.config.block_size :]

    def next_char_distribution(self, prefix: str = "") -> np.ndarray:
        """Probabilities[vocab_size] (alphabet order, '.' = end) of the character after `prefix`."""
        context = self._context(self.normalise(prefix))
        if isinstance(self.source, ContextTable):
            return np.exp(self.source.table[self.source.code(context)])
        return np.exp(self.source.log_probs(np.array([context], dtype=np.int64))[0])

    def word_losses(self, words: list[str]) -> list[WordScore]:
        """Score each word: every character and the end token, predicted from its context."""
        words = [self.normalise(w) for w in words]
        if not all(words):
            raise ValueError("cannot score an empty word")
        log_probs = self._target_log_probs(words)
        scores, start = [], 0
        for word in words:
            end = start + len(word) + 1
            word_lps = log_probs[start:end]
            scores.append(
                WordScore(word, word + BOUNDARY, [math.exp(lp) for lp in word_lps], [-lp for lp in word_lps])
            )
            start = end
        return scores

    def _target_log_probs(self, words: list[str]) -> list[float]:
        """log p of every prediction of every word, in order: each character, then the end."""
        table = self.source
        if not isinstance(table, ContextTable):
            x, y = build_windows(words, self.vocab, self.config.block_size)
            return self.source.log_probs(x.numpy())[np.arange(len(y)), y.numpy()].tolist()
        log_prob, out = table.table.item, []
        for word in words:
            code = 0
            for idx in [*self.vocab.encode(word), 0]:
                out.append(log_prob(code, idx))
                code = table.next_code(code, idx)
        return out

    def sample(
        self,
        n: int = 1,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: str = "",
        max_length: int = 32,
        seed: int | None = None,
    ) -> list[str]:
        """Sample `n` names starting with `prefix` (see `sample_scored`)."""
        return [name for name, _ in self.sample_scored(n, temperature, top_k, prefix, max_length, seed)]

    def sample_scored(
        self,
        n: int = 1,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: str = "",
        max_length: int = 32,
        seed: int | None = None,
    ) -> list[tuple[str, float]]:
        """Sample `n` (name, loss) pairs starting with `prefix`.

        The loss is the model's own mean NLL of the name (as `word_losses` gives it), whatever
        the temperature or top_k it was drawn with. Names are never empty: with an empty prefix
        the end token cannot be drawn first (exact conditioning on length >= 1). A name that has
        not ended after `max_length` characters is cut there.
        """
        return self.sample_scored_many([(n, seed)], temperature, top_k, prefix, max_length)[0]

    def sample_scored_many(
        self,
        requests: list[tuple[int, int | None]],
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: str = "",
        max_length: int = 32,
    ) -> list[list[tuple[str, float]]]:
        """`sample_scored` for several (n, seed) requests with the same settings, in one pass.

        Each request gets exactly the names it would get alone.
        """
        prefix = self.normalise(prefix)
        for n, _ in requests:
            self._check_sampling(n, temperature, top_k, prefix, max_length)
        seeded = [(n, seed if seed is not None else secrets.randbits(64)) for n, seed in requests]
        keys, total = StreamKeys.of_requests(seeded), sum(n for n, _ in seeded)
        shaping = Shaping(temperature, top_k, forbid_end_first=not prefix)
        args = (self.vocab.alphabet, keys, self._context(prefix), max_length - len(prefix))
        if not isinstance(self.source, ContextTable):
            texts, sums = sample_rows_vectorised(ForwardSteps(self.source, shaping), *args)
        elif total <= self.python_sampling_max_n:
            texts, sums = sample_rows_python(self.source, *args, shaping)
        else:
            texts, sums = sample_rows_vectorised(TableSteps(self.source, shaping), *args)
        prefix_sum = sum(self._target_log_probs([prefix])[:-1]) if prefix else 0.0
        scored = [
            (prefix + text, -(prefix_sum + lp) / (len(prefix) + len(text) + 1))
            for text, lp in zip(texts, sums, strict=True)
        ]
        bounds = np.cumsum([0] + [n for n, _ in seeded]).tolist()
        return [scored[a:b] for a, b in pairwise(bounds)]

    def _check_sampling(self, n: int, temperature: float, top_k: int | None, prefix: str, max_length: int):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be finite and > 0, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.vocab.size:
            raise ValueError(f"top_k must be between 1 and {self.vocab.size}, got {top_k}")
        if max_length < 1 or len(prefix) > max_length:
            raise ValueError(f"max_length must be >= 1 and >= len(prefix), got {max_length}")
        self.vocab.check(prefix)

    def is_known_word(self, word: str) -> bool:
        """Whether `word` is in the word list this checkpoint was trained from (any split)."""
        return self.are_known_names([self.normalise(word)])[0]

    def are_known_names(self, names: list[str]) -> list[bool]:
        """`is_known_word` for names as the model writes them (already normalised), in bulk."""
        if len(names) < ARRAY_HASHING_MIN_NAMES:
            return [contains_one(self._known_hashes, word_hash(name)) for name in names]
        return contains(self._known_hashes, word_hashes(names)).tolist()
