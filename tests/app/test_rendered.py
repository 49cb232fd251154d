"""Sampled names cross from a model process as their JSON (`app.serving.rendered`): the same
names, the same floats to the last bit, the same response bytes."""

import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest

from app.api.errors import JSONBytes
from app.serving.rendered import RenderedSamples, rendered
from model.engine.language_model import LanguageModel, Sample, SampleResult
from model.engine.params import SamplingParams

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@pytest.fixture(scope="module")
def names() -> list[Sample]:
    model = LanguageModel.from_checkpoint(WEIGHTS / "names-gru.safetensors", device="cpu")
    drawn = model.sample(40, SamplingParams(), seed=3).names
    cut = model.sample(10, SamplingParams(max_length=2, temperature=2.5), seed=4).names
    assert any(s.truncated for s in cut) and any(s.novel for s in drawn + cut)
    return drawn + cut + [Sample("zq", 3.25, None, True, False)]  # a percentile may be null


def exact(samples) -> list:
    return [(s.name, np.float64(s.loss).tobytes(), s.percentile, s.novel, s.truncated) for s in samples]


def test_rendered_names_unpickle_to_the_same_names_to_the_last_bit(names):
    sent = pickle.loads(pickle.dumps(RenderedSamples.of(names)))
    assert len(sent) == len(names)
    assert exact(sent) == exact(names)
    assert sent == names and names == sent and sent[3] == names[3] and sent[-2:] == names[-2:]
    assert sent != names[:-1] and sent != [*names[:-1], Sample("zq", 3.25, None, True, True)]


def test_a_response_holds_the_bytes_it_holds_for_the_dataclasses(names):
    body = {"model": "names-gru", "names": names, "complete": True, "reason": None}
    as_list = JSONBytes(body).body
    assert as_list == orjson.dumps(body)
    sent = pickle.loads(pickle.dumps(RenderedSamples.of(names)))
    assert JSONBytes({**body, "names": sent}).body == as_list
    with pytest.raises(TypeError, match="not JSON serializable"):
        JSONBytes({"names": object()})


def test_only_sampling_answers_are_rendered(names):
    result = SampleResult(names, complete=False, reason="budget")
    out = rendered("sample", result)
    assert isinstance(out.names, RenderedSamples) and out == result
    assert (out.complete, out.reason) == (False, "budget")
    batch = rendered("sample_batch", [names[:3], names[3:]])
    assert all(isinstance(part, RenderedSamples) for part in batch) and batch == [names[:3], names[3:]]
    scores = [object()]
    assert rendered("word_losses", scores) is scores
