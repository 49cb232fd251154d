"""The seed notes' five claims, each judged by an explicit rule on the measured numbers.

Every threshold is a named constant below, used by the check and formatted into the rule text the
report prints, so the report cannot state one number while the code checks another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from model.experiments.inits import PARAM_QUANTILES, SATURATED, SCHEMES, InitRun, SurveyRow
from model.experiments.lr_finder import SMOOTHING, FinderResult
from model.experiments.stats import SPREAD_QUANTILES, mean_val, percentile_range, spearman, spread

# What the seed notes reported (quoted in the claims, compared against in the rules)
NOTEBOOK_FIRST_LOSS = {"randn": 17.7, "uniform:0,1": 10.0}
NOTEBOOK_SWING = (2, 10)  # U[0,1)-style minibatch loss swings between these before the lr drop
NOTEBOOK_FLOOR = 2.8  # constant init's final loss
NOTEBOOK_GOOD_LR = 0.1  # where the notes say the finder points
SCHEME_LABELS = tuple(spec.label for spec in SCHEMES)

# Shared
DROP_WINDOW = 5  # around the lr drop at step d, windows of d / DROP_WINDOW steps either side are compared
SURVEY_SLACK = 0.1  # a seeds' range of initial losses, widened by this fraction each side
TAIL_QUANTILES = (0.01, 0.99)  # the range of a stretch of minibatch losses
# Claim 1
FIRST_LOSS_RATIO = 1.3  # N(0,1)'s first minibatch loss must be at least this times U[0,1)'s
LOSS_SPREAD_RANK = 0.8  # least Spearman(initial loss, logit spread) over the schemes
# Claim 2
DROP_NARROWS = 0.6  # the spread after the drop is at most this share of the spread before
CONTROL_KEEPS = 0.8  # without the drop, the spread keeps at least this share
DROP_VAL_GAIN = 0.05  # most the drop may gain in val loss beyond the control's for "no better model"
SWING_HIGH = 7.0  # least 99th percentile of the minibatch loss before the drop ("swings up to about 10")
# Claim 3
TRAINS_WELL = 0.05  # U[0.1,0.3) ends at most this far above N(0,1)'s val loss
SATURATED_AT_INIT = 0.95  # least share of saturated tanh outputs for "starts saturated"
SWING_FACTOR = 2.0  # "swings like U[0,1)": pre-drop spread at least this times the scaled init's
ENDS_NEAR = 0.15  # U[-4,0) ends within this of U[0,1)'s val loss
SATURATION_RANK = 0.6  # least Spearman(saturation at init, final val loss) over the schemes
# Claim 4
FLOOR_NEAR = 0.15  # "ends near the notebook's floor": within this of NOTEBOOK_FLOOR
IDENTICAL_UNITS = 1e-6  # largest hidden-unit difference that still counts as identical
NEAR_ONE = (0.8, 1.2)  # U[0.9,1.1)'s parameters (PARAM_QUANTILES band) stay inside this: "stays near 1"
BROKEN_SYMMETRY = 0.01  # least hidden-unit difference of a run whose symmetry counts as broken
SAME_LOSS = 0.02  # a symmetry-broken run this close to constant:1 is stuck at the same floor
# Claim 5
NEAR_DECADES = 0.5  # the finder's pick is "near" NOTEBOOK_GOOD_LR within this many decades either way


@dataclass(frozen=True)
class Verdict:
    number: int
    claim: str
    status: str  # confirmed | partly | refuted | not run
    rule: str
    evidence: str


def _runs(runs: list[InitRun], *labels: str) -> list[InitRun] | None:
    found = {run.spec.label: run for run in runs}
    return [found[label] for label in labels] if all(label in found for label in labels) else None


def _schemes(runs: list[InitRun]) -> list[InitRun]:
    return [run for run in runs if run.spec.label in SCHEME_LABELS]


def _by_count(passed: list[bool]) -> str:
    return "confirmed" if all(passed) else "refuted" if not any(passed) else "partly"


def _status(refuted: bool, confirmed: bool) -> str:
    return "refuted" if refuted else "confirmed" if confirmed else "partly"


def _pct(q: float) -> str:
    """0.05 -> '5th', 0.99 -> '99th'."""
    n = round(q * 100)
    return f"{n}{'st' if n % 10 == 1 and n != 11 else 'th'}"


def _sci(value: float) -> str:
    """1e-06 -> '1e-6'."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _band(quantiles: tuple[float, float]) -> str:
    return f"{_pct(quantiles[0])}-{_pct(quantiles[1])} percentile"


def _window_spreads(run: InitRun) -> tuple[float, float]:
    """Spread (stats.spread) of the minibatch loss over d / DROP_WINDOW steps before and after the drop."""
    d = run.decay_step
    w = max(1, d // DROP_WINDOW)
    return spread(run.step_losses[d - w : d]), spread(run.step_losses[d : d + w])


def _val_change(run: InitRun) -> tuple[float, float]:
    """Mean whole-split val loss over d / DROP_WINDOW steps before and after the drop at d."""
    d = run.decay_step
    w = max(1, d // DROP_WINDOW)
    return mean_val(run.val_points, d - w, d), mean_val(run.val_points, d, d + w)


CLAIMS = {
    1: "N(0,1) init starts with a much higher loss than U[0,1) (about "
    f"{NOTEBOOK_FIRST_LOSS['randn']:g} against about {NOTEBOOK_FIRST_LOSS['uniform:0,1']:g}) "
    "because its values spread wider.",
    2: f"U[0,1)-style inits swing between about {NOTEBOOK_SWING[0]} and {NOTEBOOK_SWING[1]}, then narrow "
    "exactly at the lr drop: the narrowing is the smaller step, not a better phase.",
    3: "Not the sign of the init but how many pre-activations land on tanh's slope matters: "
    "U[0.1,0.3) trains well, U[-4,0) looks like U[0,1).",
    4: f"Constant init cannot learn past about {NOTEBOOK_FLOOR:g} because every hidden unit stays the same; "
    f"U[0.9,1.1) stays near 1 and ends near {NOTEBOOK_FLOOR:g} too.",
    5: "The lr finder (lr = 10^x, x from -3 to 0 over 1,000 steps) locates a good lr near "
    f"{NOTEBOOK_GOOD_LR:g}.",
}


def _not_run(number: int, what: str) -> Verdict:
    return Verdict(number, CLAIMS[number], "not run", "", f"needs {what}")


def _in_range(value: float, losses: tuple[float, ...]) -> bool:
    """`value` lies within the seeds' range of losses, widened by SURVEY_SLACK each side."""
    return (1 - SURVEY_SLACK) * min(losses) <= value <= (1 + SURVEY_SLACK) * max(losses)


def _survey_text(survey: list[SurveyRow]) -> str:
    return "; ".join(
        f"{row.init} at hidden {row.n_hidden}: {min(row.losses):.1f}..{max(row.losses):.1f}" for row in survey
    )


def claim_1(runs: list[InitRun], survey: list[SurveyRow], n_hidden: int) -> Verdict:
    pair = _runs(runs, "randn", "uniform:0,1")
    rows = {(row.init, row.n_hidden): row for row in survey}
    if pair is None or any((label, n_hidden) not in rows for label in NOTEBOOK_FIRST_LOSS):
        return _not_run(1, "the randn and uniform:0,1 runs and the initial-loss survey")
    randn, uni = pair
    a, b = randn.step_losses[0].item(), uni.step_losses[0].item()
    misses = [
        label
        for label, value in NOTEBOOK_FIRST_LOSS.items()
        if not _in_range(value, rows[label, n_hidden].losses)
    ]
    schemes = _schemes(runs)
    rho = spearman([r.step_losses[0].item() for r in schemes], [r.initial.logit_spread for r in schemes])
    explained = rho >= LOSS_SPREAD_RANK and randn.initial.param_std > uni.initial.param_std
    elsewhere = [
        f"the notebook's {NOTEBOOK_FIRST_LOSS[label]:g} for {label} is in the range at hidden {row.n_hidden}"
        for label in misses
        for row in survey
        if row.init == label
        and row.n_hidden != n_hidden
        and _in_range(NOTEBOOK_FIRST_LOSS[label], row.losses)
    ]
    seeds = len(rows[next(iter(NOTEBOOK_FIRST_LOSS)), n_hidden].losses)
    notebook = " vs ".join(f"{v:g}" for v in NOTEBOOK_FIRST_LOSS.values())
    return Verdict(
        1,
        CLAIMS[1],
        _status(a < FIRST_LOSS_RATIO * b, not misses and explained),
        f"refuted unless the first minibatch loss of N(0,1) is at least {FIRST_LOSS_RATIO:g}x U[0,1)'s; "
        f"confirmed if, beyond that, each notebook number lies within the range over init seeds "
        f"0-{seeds - 1} at hidden {n_hidden} (widened by {SURVEY_SLACK:.0%}) and the cause holds (N(0,1)'s "
        "parameter std is larger and, over all schemes, the initial loss ranks with the logits' spread: "
        f"Spearman >= {LOSS_SPREAD_RANK:g}); else partly",
        f"first minibatch loss N(0,1) {a:.2f} vs U[0,1) {b:.2f} (notebook {notebook}; ratio {a / b:.1f}x); "
        f"whole training split at init {randn.initial.train_loss:.2f} vs {uni.initial.train_loss:.2f}. "
        f"Parameter std {randn.initial.param_std:.2f} vs {uni.initial.param_std:.2f}, logit spread across "
        f"characters {randn.initial.logit_spread:.1f} vs {uni.initial.logit_spread:.1f}; "
        f"Spearman(initial loss, logit spread) over {len(schemes)} schemes = {rho:.2f}. Loss at init over "
        f"init seeds 0-{seeds - 1}: {_survey_text(survey)}."
        + (f" Not reproduced at hidden {n_hidden}: {', '.join(misses)}." if misses else "")
        + (f" But {'; '.join(elsewhere)}." if elsewhere else ""),
    )


def claim_2(runs: list[InitRun]) -> Verdict:
    pair = _runs(runs, "uniform:0,1", "uniform:0,1 (no lr drop)")
    if pair is None:
        return _not_run(2, "the uniform:0,1 run and its no-lr-drop control")
    main, control = pair
    d = main.decay_step
    (mb, ma), (cb, ca) = _window_spreads(main), _window_spreads(control)
    caused = ma / mb <= DROP_NARROWS and ca / cb >= CONTROL_KEEPS
    (vb, va), (cvb, cva) = _val_change(main), _val_change(control)
    extra_gain = (vb - va) - (cvb - cva)
    low, high = percentile_range(main.step_losses[d // 2 : d], *TAIL_QUANTILES)
    others = ", ".join(
        f"{r.spec.label} {b:.2f} -> {a:.2f}"
        for r in _schemes(runs)
        if r.spec.label in ("uniform:0,4", "uniform:-4,0", "scaled")
        for b, a in [_window_spreads(r)]
    )
    status = _status(not caused, extra_gain <= DROP_VAL_GAIN and high >= SWING_HIGH)
    return Verdict(
        2,
        CLAIMS[2],
        status,
        f"spread = {_band(SPREAD_QUANTILES)} width of the minibatch loss over the d/{DROP_WINDOW} steps "
        f"before vs after the drop at step d. Refuted unless U[0,1)'s spread falls to <= {DROP_NARROWS:g}x "
        f"while the same run without the drop keeps >= {CONTROL_KEEPS:g}x; confirmed only if, beyond that, "
        f"the whole-split val loss gains at most {DROP_VAL_GAIN:g} more than the control's over those steps "
        "(no better model, only smaller swings) and the swings before the drop reach about "
        f"{NOTEBOOK_SWING[1]} ({_pct(TAIL_QUANTILES[1])} percentile >= {SWING_HIGH:g}); else partly",
        f"U[0,1) spread {mb:.2f} -> {ma:.2f} ({ma / mb:.2f}x) at step {d}; control without the drop "
        f"{cb:.2f} -> {ca:.2f} ({ca / cb:.2f}x). Whole-split val loss {vb:.3f} -> {va:.3f} with the drop, "
        f"{cvb:.3f} -> {cva:.3f} without: the drop gains {extra_gain:.3f} more. Minibatch loss between "
        f"{low:.2f} and {high:.2f} ({_band(TAIL_QUANTILES)}) over steps {d // 2}-{d}. "
        f"Other spreads: {others}. "
        f"At the end of the run: val {main.val_loss:.3f} with the drop, {control.val_loss:.3f} without.",
    )


def _mark(ok: bool) -> str:
    return "pass" if ok else "fail"


def claim_3(runs: list[InitRun]) -> Verdict:
    found = _runs(runs, "randn", "uniform:0,1", "uniform:0.1,0.3", "uniform:-4,0", "scaled")
    if found is None:
        return _not_run(3, "the randn, uniform:0,1, uniform:0.1,0.3, uniform:-4,0 and scaled runs")
    randn, uni, small, neg, scaled = found
    trains_well = small.val_loss <= randn.val_loss + TRAINS_WELL
    ref = _window_spreads(scaled)[0]
    looks = all(
        r.initial.saturation >= SATURATED_AT_INIT and _window_spreads(r)[0] >= SWING_FACTOR * ref
        for r in (uni, neg)
    )
    ends = abs(neg.val_loss - uni.val_loss) <= ENDS_NEAR
    schemes = _schemes(runs)
    rho = spearman([r.initial.saturation for r in schemes], [r.val_loss for r in schemes])
    mirror = _runs(runs, "uniform:0,4")
    return Verdict(
        3,
        CLAIMS[3],
        _by_count([trains_well, looks, ends, rho >= SATURATION_RANK]),
        f"four tests, confirmed if all pass, refuted if none: (a) all-positive U[0.1,0.3) ends within "
        f"{TRAINS_WELL:g} of N(0,1)'s val loss or below; (b) U[-4,0) looks like U[0,1): both start >= "
        f"{SATURATED_AT_INIT:.0%} saturated (|h| > {SATURATED}) and both swing (pre-drop spread) at least "
        f"{SWING_FACTOR:g}x as wide as the scaled init; (c) U[-4,0) ends within {ENDS_NEAR:g} of U[0,1)'s "
        "val loss; (d) over all schemes the saturated fraction at init ranks with the final val loss "
        f"(Spearman >= {SATURATION_RANK:g})",
        f"(a) {_mark(trains_well)}: U[0.1,0.3) {small.initial.saturation:.0%} saturated, val "
        f"{small.val_loss:.3f} vs N(0,1) {randn.initial.saturation:.0%}, {randn.val_loss:.3f}. "
        f"(b) {_mark(looks)}: U[0,1) {uni.initial.saturation:.0%} saturated, spread "
        f"{_window_spreads(uni)[0]:.2f}; U[-4,0) {neg.initial.saturation:.0%}, "
        f"{_window_spreads(neg)[0]:.2f}; "
        f"scaled spread {ref:.2f}. (c) {_mark(ends)}: val U[-4,0) {neg.val_loss:.3f} vs U[0,1) "
        f"{uni.val_loss:.3f}. (d) {_mark(rho >= SATURATION_RANK)}: Spearman(saturation, val) over "
        f"{len(schemes)} schemes = {rho:.2f}."
        + (
            f" The sign itself changes nothing: U[-4,0) ends at {neg.val_loss:.4f}, its positive mirror "
            f"U[0,4) at {mirror[0].val_loss:.4f}."
            if mirror
            else ""
        ),
    )


def claim_4(runs: list[InitRun], unigram: float) -> Verdict:
    found = _runs(runs, "constant:1", "uniform:0.9,1.1", "constant:0.01")
    if found is None:
        return _not_run(4, "the constant:1, uniform:0.9,1.1 and constant:0.01 runs")
    const, near_one, small = found
    floor = abs(const.val_loss - NOTEBOOK_FLOOR) <= FLOOR_NEAR
    identical = const.unit_spread <= IDENTICAL_UNITS
    low, high = near_one.param_range
    stays = (
        abs(near_one.val_loss - NOTEBOOK_FLOOR) <= FLOOR_NEAR and low >= NEAR_ONE[0] and high <= NEAR_ONE[1]
    )
    below_floor = NOTEBOOK_FLOOR - FLOOR_NEAR
    tie = _sci(IDENTICAL_UNITS)
    symmetric_learns = small.unit_spread <= IDENTICAL_UNITS and small.val_loss < below_floor
    asymmetric_stuck = (
        near_one.unit_spread > BROKEN_SYMMETRY and abs(near_one.val_loss - const.val_loss) <= SAME_LOSS
    )
    cause_holds = not (symmetric_learns or asymmetric_stuck)
    status = _status(not (floor and identical), stays and cause_holds)
    return Verdict(
        4,
        CLAIMS[4],
        status,
        f"refuted unless constant:1 ends within {FLOOR_NEAR:g} of {NOTEBOOK_FLOOR:g} with every hidden unit "
        f"identical (max difference <= {tie}); confirmed only if also U[0.9,1.1) ends within "
        f"{FLOOR_NEAR:g} of {NOTEBOOK_FLOOR:g} with its {_band(PARAM_QUANTILES)} parameters inside "
        f"[{NEAR_ONE[0]:g}, {NEAR_ONE[1]:g}], and symmetry survives as the cause: no "
        f"symmetric-but-unsaturated run (constant:0.01, unit difference <= {tie}) gets below "
        f"{below_floor:g} and no symmetry-broken run (U[0.9,1.1), unit difference > {BROKEN_SYMMETRY:g}) "
        f"sits within {SAME_LOSS:g} of constant:1; else partly",
        f"constant:1: val {const.val_loss:.4f}, largest hidden-unit difference {const.unit_spread:.1e}, "
        f"{const.initial.saturation:.0%} saturated at init. U[0.9,1.1): val {near_one.val_loss:.4f}, "
        f"parameters {low:.2f}..{high:.2f} ({_band(PARAM_QUANTILES)}), unit difference "
        f"{near_one.unit_spread:.2f}. constant:0.01 (all-equal, unsaturated): val {small.val_loss:.4f}, unit "
        f"difference {small.unit_spread:.1e}, {small.initial.saturation:.0%} saturated at init"
        + (
            " (its units start identical, but float rounding splits them once gradients reach the hidden "
            "layer; no gradient reaches constant:1's saturated units, so its tie stays exact)"
            if small.unit_spread > IDENTICAL_UNITS
            else " (its units stay identical)"
        )
        + f". Entropy of the training split's next-character frequencies (the best loss of a model that "
        f"ignores the context): {unigram:.4f}."
        + (
            " U[0.9,1.1) starts with its units already different, yet ends at constant:1's loss: saturated "
            f"tanh units pass neither context forward nor gradient back, so the {NOTEBOOK_FLOOR:g} floor is "
            "the unigram floor of saturation, not symmetry."
            if asymmetric_stuck
            else ""
        ),
    )


def claim_5(finders: list[FinderResult]) -> Verdict:
    found = {f.init: f for f in finders}
    if "randn" not in found:
        return _not_run(5, "the lr finder on the randn init")

    low, high = NOTEBOOK_GOOD_LR * 10**-NEAR_DECADES, NOTEBOOK_GOOD_LR * 10**NEAR_DECADES

    def near(lr: float) -> bool:
        return math.isfinite(lr) and low <= lr <= high

    results = [near(found[init].lr_min) for init in ("randn", "scaled") if init in found]
    status = "confirmed" if all(results) else "partly" if any(results) else "refuted"
    return Verdict(
        5,
        CLAIMS[5],
        status,
        f"the finder's pick is the lr at the minimum of the {SMOOTHING}-step moving average of the sweep's "
        f"minibatch loss; 'near {NOTEBOOK_GOOD_LR:g}' = within {NEAR_DECADES:g} decade either way "
        f"({low:.2g}..{high:.2g}). Confirmed if that holds for N(0,1) (the notebook's init) and the scaled "
        "init, partly if for one",
        "; ".join(
            f"{f.init}: minimum at lr {f.lr_min:.3g}, steepest descent at lr {f.lr_steep:.3g}"
            for f in found.values()
        )
        + ".",
    )


def judge(
    runs: list[InitRun], finders: list[FinderResult], survey: list[SurveyRow], unigram: float, n_hidden: int
) -> list[Verdict]:
    return [
        claim_1(runs, survey, n_hidden),
        claim_2(runs),
        claim_3(runs),
        claim_4(runs, unigram),
        claim_5(finders),
    ]
