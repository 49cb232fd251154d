"""The facade the service uses: a checkpoint on a device, answering sample / distribution / loss.

Each call is text -> ids -> one batched forward pass -> numbers; nothing here knows HTTP.
Seeded calls use their own torch.Generator, so the same seed gives the same names whatever else
runs concurrently.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch

from model.checkpoint import Checkpoint, load_checkpoint, word_hash
from model.data import build_windows
from model.device import resolve_device
from model.mlp import count_parameters
from model.vocab import BOUNDARY


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
    def __init__(self, checkpoint: Checkpoint, device: torch.device, name: str = "model") -> None:
        self.checkpoint = checkpoint
        self.vocab = checkpoint.vocab
        self.config = checkpoint.config
        self.device = device
        self.name = name
        # float64 (MPS has none: float32 there) so a word's numbers do not depend on its batch
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.model = checkpoint.build_model(device).to(dtype)
        self.parameter_count = count_parameters(self.model)
        self._known_hashes = frozenset(checkpoint.known_word_hashes.tolist())

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto") -> LanguageModel:
        path = Path(path)
        return cls(load_checkpoint(path), resolve_device(device), name=path.stem)

    # text -> ids -----------------------------------------------------------------------------

    def normalise(self, text: str) -> str:
        return self.vocab.normalise(text)

    def _context(self, prefix: str) -> list[int]:
        """The last block_size ids before the next character, left-padded with '.'."""
        ids = [0] * self.config.block_size + self.vocab.encode(prefix)
        return ids[-self.config.block_size :]

    # ids -> logits ---------------------------------------------------------------------------

    def _logits(self, contexts: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(contexts.to(self.device))

    # logits -> probabilities / losses / samples ----------------------------------------------

    def next_char_distribution(self, prefix: str = "") -> torch.Tensor:
        """Probabilities[vocab_size] (alphabet order, '.' = end) of the character after `prefix`."""
        prefix = self.normalise(prefix)
        context = torch.tensor([self._context(prefix)])
        return torch.softmax(self._logits(context), dim=-1)[0].cpu()

    def word_losses(self, words: list[str]) -> list[WordScore]:
        """Score each word: every character and the end token, predicted from its context."""
        words = [self.normalise(w) for w in words]
        for word in words:
            if not word:
                raise ValueError("cannot score an empty word")
        x, y = build_windows(words, self.vocab, self.config.block_size)
        log_probs = torch.log_softmax(self._logits(x), dim=-1).gather(1, y.to(self.device)[:, None])[:, 0]
        nlls = (-log_probs).cpu().tolist()
        probs = log_probs.exp().cpu().tolist()
        scores, start = [], 0
        for word in words:
            end = start + len(word) + 1
            scores.append(WordScore(word, word + BOUNDARY, probs[start:end], nlls[start:end]))
            start = end
        return scores

    def sample(
        self,
        n: int = 1,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: str = "",
        max_length: int = 32,
        seed: int | None = None,
    ) -> list[str]:
        """Sample `n` names starting with `prefix`, all rows advancing together one char a step.

        Names are never empty: with an empty prefix the end token cannot be drawn first (exact
        conditioning on length >= 1). A name that has not ended after `max_length` characters is
        cut there.
        """
        prefix = self.normalise(prefix)
        self._check_sampling(n, temperature, top_k, prefix, max_length)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed if seed is not None else secrets.randbits(63))
        contexts = torch.tensor([self._context(prefix)] * n, device=self.device)
        steps = max_length - len(prefix)
        drawn = torch.zeros(n, steps, dtype=torch.long, device=self.device)
        alive = torch.ones(n, dtype=torch.bool, device=self.device)
        for t in range(steps):
            logits = self._logits(contexts) / temperature
            if t == 0 and not prefix:
                logits[:, 0] = -math.inf
            if top_k is not None and top_k < logits.shape[1]:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -math.inf)
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            nxt = nxt.masked_fill(~alive, 0)
            drawn[:, t] = nxt
            alive &= nxt != 0
            if not alive.any():
                break
            contexts = torch.cat([contexts[:, 1:], nxt[:, None]], dim=1)
        names = []
        for row in drawn.cpu().tolist():
            length = row.index(0) if 0 in row else len(row)
            names.append(prefix + self.vocab.decode(row[:length]))
        return names

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
        return word_hash(self.normalise(word)) in self._known_hashes
