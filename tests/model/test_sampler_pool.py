"""The vectorised sampler's pool (`model.engine.sampler.sample_rows_vectorised`): at most
`knobs.FORWARD_CHUNK_ROWS` rows step together; a row that ends gives its place to a waiting row
(a refillable source) or the waiting rows start once the pool is empty (any other). Either way
every row must be the bytes it is when drawn alone."""

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from model.engine import knobs
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.engine.sampler import Sampled, StreamKeys, sample_rows
from model.engine.shaping import Shaping
from model.engine.sources import ForwardSource, NextCharSource

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
POOL = 8  # places in the pool for these tests: 120 rows refill it many times
SETTINGS = [  # (prefix, shaping params): prefixes shorter than, as long as and longer than the table's
    ("", {}),
    ("a", {"temperature": 1.7, "top_k": 5}),
    ("ka", {"top_p": 0.8}),
    ("kat", {}),
    ("", {"max_length": 4}),  # names cut at 4 letters: they score the end token
]

pytestmark = pytest.mark.usefixtures("one_thread")  # as the service runs


def served(name: str) -> LanguageModel:
    """A committed model as the service loads it: self-tested, so its source may refill."""
    model = LanguageModel.from_checkpoint(WEIGHTS / f"{name}.safetensors", device="cpu")
    model.check_batching()
    for source in model.sources:
        source.table_levels()  # the prefix table, built now (in passes of the usual size)
    return model


def draw(model: LanguageModel, source: NextCharSource, keys: StreamKeys, setting: tuple) -> Sampled:
    prefix, options = setting
    params = SamplingParams(prefix=prefix, **options).checked(model.vocab)
    ids = model.vocab.encode(prefix)
    steps = params.max_length - len(ids)
    return sample_rows(source, model.vocab.alphabet, keys, ids, steps, Shaping.of(params))


def rows(sampled: Sampled) -> list[tuple[str, bytes, bool]]:
    return [
        (text, np.float64(total).tobytes(), cut)
        for text, total, cut in zip(sampled.texts, sampled.log_prob_sums, sampled.truncated, strict=True)
    ]


def keys_of(count: int, seed: int) -> StreamKeys:
    return StreamKeys(np.full(count, seed, dtype=np.uint64), np.arange(count, dtype=np.uint64))


def advance_sizes(monkeypatch: pytest.MonkeyPatch, source: NextCharSource) -> list[int]:
    """The rows of each `advance` of `source` from now on (a list that fills as it runs)."""
    sizes: list[int] = []
    advance = source.advance

    def counted(state, ids):
        sizes.append(len(ids))
        return advance(state, ids)

    monkeypatch.setattr(source, "advance", counted)
    return sizes


@pytest.mark.parametrize("name", ["names-gru-distilled", "names-gru-gender"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_rows_that_take_the_places_of_ended_ones_draw_what_they_draw_alone(monkeypatch, name, setting):
    model = served(name)
    source = model.sources[-1]  # the gender model's last source: guided steps of two networks
    assert source.refillable
    keys = keys_of(120, seed=11)
    monkeypatch.setattr(knobs, "FORWARD_CHUNK_ROWS", POOL)
    pooled = rows(draw(model, source, keys, setting))
    monkeypatch.setattr(ForwardSource, "refillable", False)  # pools of 8 rows, one after the other
    assert rows(draw(model, source, keys, setting)) == pooled
    for at in np.random.default_rng(len(setting[0])).choice(120, 12, replace=False).tolist():
        alone = StreamKeys(keys.seeds[at : at + 1], keys.rows[at : at + 1])
        assert rows(draw(model, source, alone, setting)) == pooled[at : at + 1]


def test_a_refilled_pool_steps_full_batches_until_no_row_waits(monkeypatch):
    model = served("names-gru-distilled")
    monkeypatch.setattr(knobs, "FORWARD_CHUNK_ROWS", POOL)
    sizes = advance_sizes(monkeypatch, model.source)
    draw(model, model.source, keys_of(120, seed=3), SETTINGS[0])
    first_short = next(i for i, size in enumerate(sizes) if size < POOL)
    assert sizes[:first_short] == [POOL] * first_short and first_short > 20  # refilled many times
    assert sizes[first_short:] == sorted(sizes[first_short:], reverse=True)  # then it drains
    refilled = len(sizes)
    sizes.clear()
    monkeypatch.setattr(ForwardSource, "refillable", False)
    draw(model, model.source, keys_of(120, seed=3), SETTINGS[0])
    assert max(sizes) == POOL and len(sizes) > refilled  # 15 pools that each drain: more, smaller steps


def test_a_source_that_cannot_refill_starts_waiting_rows_once_its_pool_is_empty(monkeypatch):
    model = served("names-transformer")  # torch steps: a key/value cache per position, no places
    assert not model.source.refillable
    keys = keys_of(20, seed=4)
    monkeypatch.setattr(knobs, "FORWARD_CHUNK_ROWS", POOL)
    sizes = advance_sizes(monkeypatch, model.source)
    pooled = rows(draw(model, model.source, keys, SETTINGS[1]))
    assert max(sizes) == POOL
    assert any(b > a for a, b in pairwise(sizes))  # a pool drained, the next one started
    for at in (0, 9, 19):
        alone = StreamKeys(keys.seeds[at : at + 1], keys.rows[at : at + 1])
        assert rows(draw(model, model.source, alone, SETTINGS[1])) == pooled[at : at + 1]
