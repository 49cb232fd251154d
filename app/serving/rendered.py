"""Sampled names as they cross from a model process to the event loop: their JSON.

A model process answers a sampling job with lists of `Sample` dataclasses. Pickled as they are,
100 names cost the process about 50 us to pickle and the event loop about 45-90 us to unpickle,
on the loop that parses and answers every request. `RenderedSamples` carries them instead as the
JSON array orjson writes for them (the same bytes the response would hold): pickling it copies
bytes, the response embeds them as they are (`JSONBytes`), and the `Sample`s are parsed back only
if something reads them (orjson's floats round-trip exactly, so they are equal to the originals).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, overload

import orjson

from model.engine.language_model import Sample


class RenderedSamples(Sequence[Sample]):
    """A list of `Sample`s held as its JSON array."""

    __slots__ = ("_count", "_samples", "json")

    def __init__(self, json: bytes, count: int) -> None:
        self.json, self._count = json, count
        self._samples: list[Sample] | None = None

    @classmethod
    def of(cls, samples: list[Sample]) -> RenderedSamples:
        return cls(orjson.dumps(samples), len(samples))

    def __reduce__(self) -> tuple:
        return RenderedSamples, (self.json, self._count)

    def __len__(self) -> int:
        return self._count

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = [Sample(**fields) for fields in orjson.loads(self.json)]
        return self._samples

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...
    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RenderedSamples):
            return self.json == other.json
        if isinstance(other, list):
            return self.samples == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, as a list

    def __repr__(self) -> str:
        return f"RenderedSamples({self.samples!r})"


def rendered(method: str, answer: Any) -> Any:
    """A model call's answer as it leaves a model process: the names of `sample` (a `SampleResult`)
    and of `sample_batch` (each request's list) rendered; any other answer as it is."""
    if method == "sample":
        return replace(answer, names=RenderedSamples.of(answer.names))
    if method == "sample_batch":
        return [RenderedSamples.of(names) for names in answer]
    return answer


def as_json(value: Any) -> Any:
    """orjson's `default` for a response: rendered names go in as the bytes they are."""
    if isinstance(value, RenderedSamples):
        return orjson.Fragment(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
