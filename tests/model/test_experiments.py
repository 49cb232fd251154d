"""The experiments package on tiny generated word lists: structure of the results and real properties."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model.experiments import batch_size, claims, common, inits, lr_finder, stats
from model.experiments.__main__ import main, parse_args
from model.families.mlp import RECIPE, MLPConfig


@pytest.fixture(scope="module")
def data(small_word_file: Path) -> common.Data:
    return common.load_data(small_word_file, n_hidden=32)


def _run(spec: inits.InitSpec, data: common.Data, steps: int = 200) -> inits.InitRun:
    return inits.run_scheme(spec, data, steps, progress=False)


def test_constant_init_keeps_every_hidden_unit_identical_and_cannot_beat_the_unigram(data: common.Data):
    run = _run(inits.InitSpec("constant:1", "constant:1"), data)
    assert len(run.step_losses) == 200 and [s for s, _ in run.val_points] == list(range(5, 201, 5))
    assert run.initial.saturation == 1.0 and run.initial.param_std == 0.0
    assert run.unit_spread == 0.0  # symmetric init, symmetric gradients: the units never differ
    assert run.param_range[0] > 0.9 and run.param_range[1] < 1.1  # no gradient through tanh: stays near 1
    # every tanh is pinned at 1, so the logits ignore the context: no better than the unigram frequencies
    assert run.train_loss >= stats.unigram_entropy(data.train[1]) - 1e-4
    assert run.train_loss < data.uniform_loss  # yet the output biases did learn those frequencies

    scaled = _run(inits.InitSpec("scaled", "scaled"), data)
    assert scaled.unit_spread > 0.01  # the measure does see units that differ
    assert scaled.train_loss < run.train_loss - 0.1


def test_randn_starts_far_above_the_well_scaled_init(data: common.Data):
    randn = inits.initial_state(common.fresh_model(data, "randn"), data)
    scaled = inits.initial_state(common.fresh_model(data, "scaled"), data)
    assert scaled.train_loss == pytest.approx(data.uniform_loss, abs=0.05)  # near-equal first logits
    assert randn.train_loss > scaled.train_loss + 5
    assert randn.saturation > 0.3 > scaled.saturation
    assert randn.logit_spread > 10 * scaled.logit_spread
    assert randn.histogram.sum().item() == pytest.approx(min(inits.PROBE_ROWS, len(data.train[1])) * 32)


def test_loss_at_init_grows_with_the_hidden_width(data: common.Data):
    survey = inits.initial_loss_survey(data, widths=(4,), seeds=3)
    assert [(r.init, r.n_hidden) for r in survey] == [
        ("randn", 4),
        ("uniform:0,1", 4),
        ("randn", 32),
        ("uniform:0,1", 32),
    ]
    assert all(len(r.losses) == 3 for r in survey)
    narrow, wide = survey[0].losses, survey[2].losses  # randn: logits sum ~n_hidden saturated +-1 units
    assert min(wide) > max(narrow)


def test_same_seed_same_minibatches_so_runs_are_reproducible(data: common.Data):
    spec = inits.InitSpec("uniform:0.1,0.3", "uniform:0.1,0.3")
    a, b = _run(spec, data, 50), _run(spec, data, 50)
    torch.testing.assert_close(a.step_losses, b.step_losses, rtol=0, atol=0)


def test_experiments_run_the_reference_preset(data: common.Data, small_word_file: Path):
    reference = common.load_data(small_word_file).config
    assert reference == MLPConfig(reference.vocab_size)  # the family's defaults, not a copy of them
    recipe = inits.scheme_recipe(inits.SCHEMES[0], 200)
    assert recipe == RECIPE.with_(steps=200, eval_every=200 // inits.VAL_POINTS)
    assert recipe.decay_step == int(200 * RECIPE.decay_at)
    assert inits.NO_DROP_CONTROL.lr_after == RECIPE.lr and inits.SCHEMES[0].lr_after == RECIPE.lr_after
    at_reference = batch_size.batch_recipe(RECIPE.batch_size, 40, "linear")
    assert (at_reference.lr, at_reference.lr_after, at_reference.seed) == (
        RECIPE.lr,
        RECIPE.lr_after,
        RECIPE.seed,
    )


def test_log_sweep_runs_lr_from_1e_minus_3_to_1():
    sweep = lr_finder.LogSweep(steps=1000)
    lrs = [sweep.lr_at(s) for s in range(1000)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1.0)
    assert all(b > a for a, b in itertools.pairwise(lrs))
    assert sweep.lr_at(333) == pytest.approx(10 ** (-3 + 3 * 333 / 999))
    of = lr_finder.LogSweep.of(RECIPE.with_(batch_size=7), 50)
    assert (of.steps, of.batch_size, of.seed, of.optimizer) == (50, 7, RECIPE.seed, RECIPE.optimizer)
    assert of.lr_at(49) == pytest.approx(1.0)


def test_finder_suggestions_on_a_known_curve():
    x = np.linspace(-3, 0, 1000)
    # a cliff centred at lr 1e-2, then a bowl with its bottom at lr 1e-1
    lr_min, lr_steep = lr_finder.suggestions(x, lr_finder.smooth(-np.tanh(4 * (x + 2)) + (x + 1) ** 2))
    assert math.log10(lr_min) == pytest.approx(-1, abs=0.02)
    assert math.log10(lr_steep) == pytest.approx(-2, abs=0.05)
    diverged = np.where(x < -0.5, (x + 2) ** 2, np.inf)
    smoothed = lr_finder.smooth(diverged)
    assert np.isnan(smoothed[x >= -0.5]).all() and np.isfinite(smoothed[x < -0.5]).all()
    assert math.log10(lr_finder.suggestions(x, smoothed)[0]) == pytest.approx(-2, abs=0.01)


def test_lr_finder_trains_on_the_training_split_only(data: common.Data, monkeypatch):
    seen = []

    def spy(model, train, recipe, generator, *rest, **kwargs):
        seen.append((train, rest, kwargs))
        return real(model, train, recipe, generator, *rest, **kwargs)

    real = lr_finder.train_loop
    monkeypatch.setattr(lr_finder, "train_loop", spy)
    result = lr_finder.run_lr_finder(data, "randn", steps=100, progress=False)
    ((train, rest, kwargs),) = seen
    assert train is data.train and not rest and kwargs.get("val") is None
    assert len(result.losses) == len(result.exponents) == 100
    assert result.exponents[0] == -3 and result.exponents[-1] == 0
    assert 1e-3 <= result.lr_steep <= result.lr_min <= 1


def test_batch_size_runs_record_val_against_steps_and_seconds(data: common.Data):
    runs = batch_size.run_batch_sizes(data, steps=40, sizes=(16, 64), progress=False)
    assert [r.batch_size for r in runs] == [16, 64]
    for run in runs:
        assert [s for s, _ in run.val_points] == list(range(2, 41, 2))
        assert len(run.val_seconds) == 20 and all(b >= a for a, b in itertools.pairwise(run.val_seconds))
        assert run.val_seconds[-1] <= run.wall_seconds and run.recipe.lr == RECIPE.lr
    assert runs[1].val_loss < runs[0].val_loss + 0.2  # 4x the examples is no worse


def test_lr_scaling_rules():
    assert batch_size.scaled_lr(0.1, 512, "none") == 0.1
    assert batch_size.scaled_lr(0.1, 512, "sqrt") == pytest.approx(0.2)
    assert batch_size.scaled_lr(0.1, 256, "linear") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="lr scaling"):
        batch_size.scaled_lr(0.1, 256, "cubic")


def test_ranks_and_spearman():
    assert stats.ranks([3.0, 1.0, 2.0, 2.0]) == [4.0, 1.0, 2.5, 2.5]
    assert stats.spearman([1, 2, 3, 4], [10, 20, 25, 99]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))


def _fake(
    label: str,
    losses: torch.Tensor,
    val: list[tuple[int, float]],
    final: float,
    unit: float,
    lr_after=RECIPE.lr_after,
):
    spec = inits.InitSpec(label, label.split()[0], lr_after)
    initial = inits.InitialState(3.3, 1.0, torch.zeros(inits.HISTOGRAM_BINS), 0.0, 0.0)
    recipe = RECIPE.with_(steps=len(losses), lr_after=lr_after)
    return inits.InitRun(spec, recipe, initial, losses, val, final, final, 1.0, unit, (0.9, 1.1))


def _swinging(before: float, after: float, steps: int = 1000) -> torch.Tensor:
    noise = torch.rand(steps, generator=torch.Generator().manual_seed(0))
    return torch.cat([2 + before * noise[: steps // 2], 2 + after * noise[steps // 2 :]])


@pytest.mark.parametrize(
    ("after", "control_after", "val_gain", "expected"),
    [
        (0.5, 8.0, 0.0, "confirmed"),
        (0.5, 8.0, 0.3, "partly"),
        (0.5, 0.5, 0.0, "refuted"),
        (8.0, 8.0, 0.0, "refuted"),
    ],
)
def test_claim_2_rule(after: float, control_after: float, val_gain: float, expected: str):
    flat = [(s, 2.5) for s in range(50, 1001, 50)]
    dropping = [(s, 2.5 - (val_gain if s > 500 else 0.0)) for s in range(50, 1001, 50)]
    main = _fake("uniform:0,1", _swinging(8.0, after), dropping, 2.4, 1.0)
    control = _fake(
        "uniform:0,1 (no lr drop)", _swinging(8.0, control_after), flat, 2.6, 1.0, lr_after=RECIPE.lr
    )
    assert claims.claim_2([main, control]).status == expected


@pytest.mark.parametrize(
    ("const_unit", "small_val", "near_one_val", "expected"),
    [
        (0.0, 2.75, 2.72, "confirmed"),
        (0.0, 2.40, 2.72, "partly"),
        (0.0, 2.75, 2.80, "partly"),
        (0.3, 2.75, 2.72, "refuted"),
    ],
)
def test_claim_4_rule(const_unit: float, small_val: float, near_one_val: float, expected: str):
    losses = torch.full((100,), 2.8)
    runs = [
        _fake("constant:1", losses, [], 2.80, const_unit),
        _fake("uniform:0.9,1.1", losses, [], near_one_val, 0.2),
        _fake("constant:0.01", losses, [], small_val, 0.0),
    ]
    assert claims.claim_4(runs, unigram=2.78).status == expected


def test_claim_thresholds_are_the_ones_the_rule_states(monkeypatch):
    losses = torch.full((100,), 2.8)
    runs = [
        _fake("constant:1", losses, [], 2.80, 0.0),
        _fake("uniform:0.9,1.1", losses, [], 2.72, 0.2),
        _fake("constant:0.01", losses, [], 2.60, 0.0),
    ]
    before = claims.claim_4(runs, unigram=2.78)
    assert before.status == "partly" and "gets below 2.65 " in before.rule  # 2.60 learns past the floor
    monkeypatch.setattr(claims, "FLOOR_NEAR", 0.25)  # one constant moves the check and the text together
    after = claims.claim_4(runs, unigram=2.78)
    assert after.status == "confirmed" and "within 0.25 of 2.8" in after.rule and "below 2.55 " in after.rule
    finder = claims.claim_5([])
    assert finder.status == "not run" and f"near {claims.NOTEBOOK_GOOD_LR:g}" in finder.claim


def test_missing_runs_are_reported_as_not_run():
    verdicts = claims.judge([], [], [], unigram=2.8, n_hidden=300)
    assert [v.number for v in verdicts] == [1, 2, 3, 4, 5]
    assert {v.status for v in verdicts} == {"not run"}


def test_all_writes_the_report_with_every_claim_and_figure(small_word_file: Path, tmp_path: Path):
    threads = torch.get_num_threads()
    args = ["--data", str(small_word_file), "--steps", "40", "--batch-steps", "10", "--finder-steps", "30"]
    assert main(["all", *args, "--out-dir", str(tmp_path), "--no-progress"]) == 0
    assert torch.get_num_threads() == threads  # restored after the run
    report = (tmp_path / "REPORT.md").read_text()
    assert "make experiments" in report and "python -m model.experiments all --data" in report
    for number in range(1, 6):
        assert any(f"**Claim {number}: {s}.**" in report for s in ("confirmed", "partly", "refuted"))
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) == 6 and all(f"]({name})" in report for name in pngs)
    assert all((tmp_path / name).stat().st_size > 10_000 for name in pngs)


def test_single_experiment_judges_only_what_it_ran(small_word_file: Path, tmp_path: Path):
    args = ["lr-finder", "--data", str(small_word_file), "--finder-steps", "30", "--out-dir", str(tmp_path)]
    assert main([*args, "--no-progress"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "**Claim 1: not run.**" in report and "**Claim 5: not run.**" not in report
    assert [p.name for p in tmp_path.glob("*.png")] == ["lr_finder.png"]
    with pytest.raises(SystemExit):
        parse_args(["init", "--steps", "5"])
