"""The prefix table (`model.engine.prefix_table`): the state after '.' + every short prefix and
the likeliest longer ones, looked up instead of computed. It is an accelerator only: no bit of any
answer may change."""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from model.engine import knobs
from model.engine.constraints.spec import Constraints
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams
from model.engine.sources import ForwardSource, log_softmax_rows, state_bytes

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


pytestmark = pytest.mark.usefixtures("one_thread")  # as the service runs


def served(name: str) -> LanguageModel:
    """A committed model as the service loads it: self-tested, so its table may be used."""
    model = LanguageModel.from_checkpoint(WEIGHTS / f"{name}.safetensors", device="cpu")
    model.check_batching()
    return model


@contextmanager
def table_off(model: LanguageModel):
    """Every source of `model` without its prefix table while open."""
    for source in model.sources:
        source.use_prefix_table(False)
    try:
        yield
    finally:
        for source in model.sources:
            source.use_prefix_table(True)


def answers(model: LanguageModel, rng: np.random.Generator) -> list:
    """Seeded names with their losses' bytes, word losses and next-character distributions, over
    prefixes shorter than, as long as and longer than the table's, and names cut at 1-3 letters."""
    conditions = [None] + [{key: value} for key, values in model.conditions.items() for value in values]
    out = []
    for prefix in ["", "a", "ma", "mar"]:
        for settings in [{}, {"temperature": 1.7, "top_k": 5}, {"max_length": len(prefix) + 2}]:
            params = SamplingParams(prefix=prefix, **settings)
            for condition in conditions:
                sizes, seeds = rng.integers(1, 40, 3).tolist(), rng.integers(0, 2**40, 3).tolist()
                requests = list(zip(sizes, seeds, strict=True))
                for batch in model.sample_batch(requests, params, condition):
                    out.append([(s.name, np.float64(s.loss).tobytes(), s.truncated) for s in batch])
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(k))) for k in rng.integers(1, 9, 60)]
    # and the model's own names, whose three-letter prefixes the partial level mostly holds
    words += [s.name for s in model.sample_batch([(60, int(rng.integers(2**40)))], SamplingParams())[0]]
    for condition in conditions:
        out.append([np.array(score.nlls).tobytes() for score in model.word_losses(words, condition)])
        prefixes = ["", "e", "em", "emm", *words[:5]]
        out.append([got.probs.tobytes() for got in model.next_chars(prefixes, condition)])
    return out


@pytest.mark.parametrize("name", ["names-gru-distilled", "names-gru-gender"])
def test_answers_are_the_same_bytes_with_and_without_the_table(name):
    model = served(name)
    assert [source.table_levels() for source in model.sources] == [3] * len(model.sources)
    assert [source.table_depth() for source in model.sources] == [4] * len(model.sources)  # partial
    with_table = answers(model, np.random.default_rng(1))
    with table_off(model):
        assert model.source.table_levels() == 0
        without = answers(model, np.random.default_rng(1))
    assert with_table == without


@pytest.mark.parametrize("prefix", ["", "a", "ka"])
def test_names_drawn_by_smc_are_the_same_bytes_with_and_without_the_table(prefix):
    model = served("names-gru")

    def drawn() -> tuple[list, object]:
        result = model.sample(
            40, SamplingParams(prefix=prefix), seed=5, constraints=Constraints(ends_with="son"), method="smc"
        )
        assert result.constraint.method == "smc" and len(result.names) == 40
        return [(s.name, np.float64(s.loss).tobytes()) for s in result.names], result.constraint

    with_table = drawn()
    with table_off(model):
        assert with_table == drawn()


def alone(source: ForwardSource, ids: list[int]) -> tuple:
    """The state after '.' + `ids`, one lone step each, and its log-probabilities."""
    state = source.steps.start(1)
    for idx in [0, *ids]:
        state, logits = source.steps.step(state, np.array([idx]))
    return state, log_softmax_rows(logits)


def test_every_tabled_state_is_the_state_computed_alone():
    source = served("names-gru").source
    rng = np.random.default_rng(2)
    for length in range(source.table_depth()):
        present = np.flatnonzero(source.table_rows(length, np.arange(27**length)) >= 0)
        for code in rng.choice(present, 4):
            ids = [int(code) // 27**k % 27 for k in reversed(range(length))]
            assert source.prefix_code(ids) == code
            tabled = source.tabled_state(source.table_rows(length, np.array([code])))
            state, log_probs = alone(source, ids)
            assert tabled[1].tobytes() == log_probs.tobytes()
            ((hidden, ahead),), ((alone_hidden, alone_ahead),) = tabled[0][0], state[0]
            assert hidden.tobytes() == alone_hidden.tobytes() and ahead.tobytes() == alone_ahead.tobytes()


def test_the_partial_level_holds_the_likeliest_prefixes():
    """Every tabled three-letter prefix is at least as likely as every one left out, by the
    probabilities the scoring pass gives with the table off."""
    model = served("names-gru")
    source = model.source
    codes = np.arange(27**3)
    tabled = source.table_rows(3, codes) >= 0
    assert 0 < tabled.sum() < 26**3
    with table_off(model):
        two = [[a, b] for a in range(27) for b in range(27)]
        after_two = np.array(source.prefix_log_probs(two))  # [729, 27]: log p(c | '.' a b)
        after_one = np.array(source.prefix_log_probs([[a] for a in range(27)]))
        first = source.prefix_log_probs([[]])[0]
    a, b, c = codes // 729, codes // 27 % 27, codes % 27
    log_p = first[a] + after_one[a, b] + after_two[a * 27 + b, c]
    letters = (a > 0) & (b > 0) & (c > 0)
    assert not tabled[~letters].any()  # no prefix with the end id
    assert log_p[tabled].min() >= log_p[letters & ~tabled].max()


def test_no_table_without_a_passing_self_test_nor_for_torch_steps_or_tables():
    gru = served("names-gru")
    gru.pad_to(None)  # as when no minimum passes: batching "off"
    assert gru.batching == "off" and gru.source.table_levels() == 0
    assert served("names-transformer").source.table_levels() == 0  # torch steps cannot join states
    assert served("names-mlp").source.table_levels() == 0  # a context table needs none


def test_the_table_is_bounded_by_bytes(monkeypatch):
    model = served("names-gru")
    before = answers(model, np.random.default_rng(3))
    one_row = state_bytes(model.source.tabled(0, np.zeros(1, dtype=np.int64)))
    one_row += 27 * 8  # its plain CDF
    monkeypatch.setattr(knobs, "PREFIX_TABLE_BYTES", 100 * one_row)  # levels 0 and 1 (28 rows) fit
    model.pad_to(model.min_rows)  # a new padding drops the table
    assert model.source.table_levels() == 2 and model.source.table_depth() == 3
    table = model.source._table
    assert len(table.log_probs) == 100  # and the 72 likeliest two-letter prefixes
    assert state_bytes(table.state) + table.plain_cdfs.nbytes <= knobs.PREFIX_TABLE_BYTES
    assert answers(model, np.random.default_rng(3)) == before


def test_joined_states_keep_their_rows_in_order_and_padding():
    source: ForwardSource = served("names-gru").source
    source.min_rows = 4
    steps = source.steps
    parts = [steps.step(steps.start(rows), np.arange(1, rows + 1))[0] for rows in (1, 2, 3)]
    joined = steps.join(parts)
    ((hidden, _),) = joined[0]
    assert joined[1] == 6 and len(hidden) == 6
    expected = np.concatenate([part[0][0][0][: part[1]] for part in parts])
    assert hidden.tobytes() == expected.tobytes()
    one = steps.join(parts[:1])  # one real row: padded to 4 again
    assert one[1] == 1 and len(one[0][0][0]) == 4
