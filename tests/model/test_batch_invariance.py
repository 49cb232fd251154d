"""Batch-invariant forward steps (issue 19): padding, the start-up self-test, and its verdicts.

Every committed family's forward pass is checked (the table families' too: their tables come from
it). A row's numbers must not depend on the rows it is stepped with once the self-test has passed;
where it fails on this machine's BLAS, the test shows the difference it found is real.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint
from model.engine import golden, knobs
from model.engine.golden import answers_digest, platform_key, recorded
from model.engine.invariance import invariant, smallest_minimum
from model.engine.language_model import LanguageModel
from model.engine.sampler import StreamKeys, sample_rows
from model.engine.shaping import Shaping
from model.engine.sources import ForwardSource

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
FAMILIES = ["bigram", "mlp", "wavenet", "gru", "transformer"]


pytestmark = pytest.mark.usefixtures("one_thread")  # as the service runs


def forward_source(family: str) -> ForwardSource:
    """The committed checkpoint's forward pass as the service steps it (tables set aside)."""
    model = LanguageModel.from_checkpoint(WEIGHTS / f"names-{family}.safetensors", device="cpu")
    if isinstance(model.source, ForwardSource):
        return model.source
    return ForwardSource(model.network.conditioned(0), torch.device("cpu"))


def draw(source: ForwardSource, keys: StreamKeys, prefix: list[int]) -> list[tuple[str, bytes]]:
    texts, sums, _ = sample_rows(source, ".abcdefghijklmnopqrstuvwxyz", keys, prefix, 12, Shaping())
    return [(t, np.float64(s).tobytes()) for t, s in zip(texts, sums, strict=True)]


def lone_and_batched(source: ForwardSource, rng: np.random.Generator) -> tuple[list, list]:
    """Each of a few random seeded rows drawn alone, and inside a random batch at a random position."""
    lone, batched = [], []
    for _ in range(6):
        size = int(rng.integers(2, 200))
        seeds = rng.integers(0, 2**63, size, dtype=np.uint64)
        rows = rng.integers(0, 2**20, size, dtype=np.uint64)
        at = int(rng.integers(size))
        prefix = [int(i) for i in rng.integers(1, 27, int(rng.integers(0, 3)))]
        batched.append(draw(source, StreamKeys(seeds, rows), prefix)[at])
        lone.append(draw(source, StreamKeys(seeds[at : at + 1], rows[at : at + 1]), prefix)[0])
    return lone, batched


@pytest.mark.parametrize("family", FAMILIES)
def test_a_row_is_the_same_bytes_in_any_batch_once_the_self_test_passes(family):
    source = forward_source(family)
    minimum = smallest_minimum([source])
    rng = np.random.default_rng(FAMILIES.index(family))
    if minimum is None:  # "off" on this BLAS: the self-test found a real difference at every minimum
        assert source.min_rows == knobs.PAD_MIN_ROWS
        assert not any(invariant(source, m) for m in knobs.PAD_MIN_ROWS_CANDIDATES)
        return
    assert source.min_rows == minimum
    lone, batched = lone_and_batched(source, rng)
    assert lone == batched
    # scoring too: a word's losses do not depend on the words scored with it
    words = [[int(i) for i in rng.integers(1, 27, int(rng.integers(1, 12)))] for _ in range(300)]
    together = source.score(words)
    for i in rng.integers(0, len(words), 5):
        assert source.score([words[i]])[0].tobytes() == together[i].tobytes()


def test_negative_control_without_padding_rows_change_with_their_batch():
    """The transformer's float32 torch steps with padding off (a minimum of 1 row): a lone row's
    numbers differ from the same row's in a batch, so the padding is what makes batching exact."""
    source = forward_source("transformer")
    assert not invariant(source, 1)
    source.min_rows = 1
    lone, batched = lone_and_batched(source, np.random.default_rng(5))
    assert [name for name, _ in lone] == [name for name, _ in batched]  # the names hardly ever move
    assert lone != batched  # ... but the losses' last bits do


def test_padding_keeps_the_rows_and_adds_copies():
    source = forward_source("gru")
    source.min_rows = 4
    state = source.steps.start(1)
    assert state[1] == 1
    state, logits = source.steps.step(state, np.array([3]))
    assert logits.shape == (1, 27)
    kept = source.steps.keep(state, np.array([0, 0]))
    ((hidden, ahead),) = kept[0]  # the GRU's one layer: its hidden state and what that feeds
    assert kept[1] == 2 and len(hidden) == len(ahead) == 4  # padded to 4 rows
    assert np.array_equal(hidden[2], hidden[0]) and np.array_equal(ahead[3], ahead[0])  # copies of row 0


@pytest.mark.parametrize("name", sorted(path.stem for path in WEIGHTS.glob("*.safetensors")))
def test_golden_digests_of_seeded_answers(name):
    """A replica on a recorded platform answers every seeded request with the recorded bytes; on
    an unrecorded platform (or model) there is nothing to compare with (`python -m model.engine.golden`)."""
    key = platform_key()
    digests = recorded().get(key, {})
    if name not in digests:
        pytest.skip(f"no golden digest of {name} recorded for this platform: {key}")
    model = LanguageModel.from_checkpoint(WEIGHTS / f"{name}.safetensors", device="cpu")
    model.check_batching()
    assert answers_digest(model) == digests[name]


def test_the_digest_sees_the_last_bit_of_one_weight():
    checkpoint = load_checkpoint(WEIGHTS / "names-gru.safetensors")
    before = answers_digest(LanguageModel(checkpoint, torch.device("cpu")))
    bias = checkpoint.state_dict["head.bias"]
    bias[3] = torch.nextafter(bias[3], torch.tensor(np.inf, dtype=bias.dtype))  # one ulp
    assert answers_digest(LanguageModel(checkpoint, torch.device("cpu"))) != before


def test_golden_check_names_a_differing_and_an_unrecorded_model(tmp_path, monkeypatch, capsys):
    digests = {"names-a": "1" * 64, "names-b": "2" * 64}
    monkeypatch.setattr(golden, "GOLDEN", tmp_path / "golden.json")
    monkeypatch.setattr(golden, "served_digests", lambda: dict(digests))
    assert golden.main([]) == 2  # nothing recorded for this platform
    assert golden.main(["--record"]) == 0
    assert golden.main([]) == 0
    record = golden.recorded(golden.GOLDEN)
    del record[golden.platform_key()]["names-b"]  # dropped by a change made on another platform
    golden.GOLDEN.write_text(json.dumps(record))
    capsys.readouterr()
    assert golden.main([]) == 2
    assert "names-a: ok" in capsys.readouterr().out
    digests["names-a"] = "3" * 64
    assert golden.main([]) == 1
    out = capsys.readouterr().out
    assert "names-a: DIFFERS" in out and "names-b: not recorded" in out
