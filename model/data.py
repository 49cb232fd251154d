"""Word lists: read or download (sha256-verified, cached), clean, split by word, window.

The split is over WORDS, never over examples: a word's windows all land in the same split, so
val/test measure names the model has never seen.
"""

from __future__ import annotations

import hashlib
import random
import string
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from model.atomic import write_atomically
from model.vocab import BOUNDARY_ID, Vocab

REFERENCE_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
REFERENCE_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "data"


class WordListError(ValueError):
    """The word list cannot be used (empty, or it failed verification)."""


class ChecksumMismatchError(WordListError):
    """A downloaded file's sha256 is not the expected one."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_word_list(
    url: str = REFERENCE_URL,
    sha256: str = REFERENCE_SHA256,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    timeout: float = 30.0,
) -> Path:
    """Return a cached, verified copy of `url`, downloading it first when needed.

    The file is renamed into the cache only once its sha256 matches: a bad or partial download is
    never kept.
    """
    target = cache_dir / f"{sha256[:16]}-{Path(url).name or 'words.txt'}"
    if target.exists() and file_sha256(target) == sha256:
        return target

    def fetch_and_verify(tmp: Path) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        actual = file_sha256(tmp)
        if actual != sha256:
            raise ChecksumMismatchError(
                f"download of {url} has sha256 {actual}, expected {sha256}; file discarded"
            )

    write_atomically(target, fetch_and_verify)
    return target


def read_words(path: Path) -> list[str]:
    """Read one word per line (UTF-8), stripped, blanks and repeats dropped, order kept."""
    with open(path, encoding="utf-8") as f:
        words = list(dict.fromkeys(w for line in f if (w := line.strip())))
    if not words:
        raise WordListError(f"{path} holds no words")
    return words


def expand_alphabet(spec: str) -> str:
    """The characters `spec` names, in order: ranges such as "a-z" expanded; a '-' first or last is
    itself ("a-z'-": the letters, the apostrophe and the hyphen)."""
    chars: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            low, high = ord(spec[i]), ord(spec[i + 2])
            if low > high:
                raise WordListError(f"alphabet range {spec[i : i + 3]!r} runs backwards")
            chars += [chr(c) for c in range(low, high + 1)]
            i += 3
        else:
            chars.append(spec[i])
            i += 1
    return "".join(dict.fromkeys(chars))


@dataclass(frozen=True)
class CleanedWords:
    words: list[str]
    dropped: list[str]  # words left out for holding characters outside the alphabet
    outside: list[str]  # those characters, most frequent first


def clean_words(
    words: list[str], *, lowercase: bool = False, alphabet: str | None = None, drop_others: bool = False
) -> CleanedWords:
    """`words` lowercased (when asked; repeats that lowercasing makes are dropped) and held to
    `alphabet`: a word with any other character fails the run (WordListError naming them) or,
    with `drop_others`, is left out whole (never edited into a different name)."""
    if lowercase:
        words = list(dict.fromkeys(w.lower() for w in words))
    if alphabet is None:
        return CleanedWords(words, [], [])
    allowed = set(alphabet)
    counts = Counter(c for w in words for c in w if c not in allowed)
    outside = [c for c, _ in counts.most_common()]
    dropped = [w for w in words if not set(w) <= allowed]
    if dropped and not drop_others:
        shown = ", ".join(f"{c!r} ({counts[c]:,})" for c in outside[:12])
        raise WordListError(
            f"{len(dropped):,} words hold characters outside the alphabet {alphabet!r}: {shown}; "
            "--on-other drop leaves those words out, --lowercase folds uppercase letters first"
        )
    kept = [w for w in words if set(w) <= allowed]
    if not kept:
        raise WordListError(f"no word is made only of the alphabet {alphabet!r}")
    return CleanedWords(kept, dropped, outside)


def alphabet_report(words: list[str]) -> list[str]:
    """For people, before training: every character the words use with its count, and a warning
    naming the characters outside a-z (uppercase keeps the model from lowercasing its input)."""
    counts = Counter(c for w in words for c in w)
    lines = [
        f"alphabet: {len(counts)} characters (+ '.' for the end): "
        + "  ".join(f"{c!r} {n:,}" for c, n in sorted(counts.items()))
    ]
    others = [c for c in sorted(counts) if c not in string.ascii_lowercase]
    if others:
        upper = any(c.isupper() for c in others)
        lines.append(
            f"warning: {len(others)} characters outside a-z: {' '.join(repr(c) for c in others)}"
            + (
                "; with uppercase letters the model will not lowercase its input (--lowercase)"
                if upper
                else ""
            )
            + "; --alphabet a-z --on-other drop keeps only the words made of a-z"
        )
    return lines


@dataclass(frozen=True)
class Splits:
    train: list[str]
    val: list[str]
    test: list[str]


def split_words(
    words: list[str], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> Splits:
    """Shuffle the words with `seed` and cut them into train/val/test by `fractions`."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    n1 = int(fractions[0] * len(shuffled))
    n2 = int((fractions[0] + fractions[1]) * len(shuffled))
    return Splits(shuffled[:n1], shuffled[n1:n2], shuffled[n2:])


def build_windows(words: list[str], vocab: Vocab, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context windows X[N, block_size] and next-character targets Y[N] for every word.

    Each word yields len(word) + 1 examples: every character, then the end token, each
    predicted from the previous `block_size` ids, padded on the left with '.' (id 0).
    """
    contexts: list[list[int]] = []
    targets: list[int] = []
    for word in words:
        context = [BOUNDARY_ID] * block_size
        for idx in [*vocab.encode(word), BOUNDARY_ID]:
            contexts.append(context)
            targets.append(idx)
            context = [*context[1:], idx]
    x = torch.tensor(contexts, dtype=torch.long).reshape(-1, block_size)
    return x, torch.tensor(targets, dtype=torch.long)


IGNORE_TARGET = -1  # padding after a name's end: predicts nothing, counts in no loss


def build_sequences(words: list[str], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-name rows for sequence models: inputs[N, T] = '.' + word (padded with '.') and
    targets[N, T] = word + '.' (padded with IGNORE_TARGET), T = longest word + 1.

    Row by row these are exactly `build_windows`' predictions: every character, then the end.
    """
    width = max(map(len, words), default=0) + 1
    inputs = torch.full((len(words), width), BOUNDARY_ID, dtype=torch.long)
    targets = torch.full((len(words), width), IGNORE_TARGET, dtype=torch.long)
    for row, word in enumerate(words):
        ids = vocab.encode(word)
        inputs[row, 1 : len(ids) + 1] = torch.tensor(ids, dtype=torch.long)
        targets[row, : len(ids) + 1] = torch.tensor([*ids, BOUNDARY_ID], dtype=torch.long)
    return inputs, targets
