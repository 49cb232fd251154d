"""Train the reference MLP from each initialisation scheme with one seed and split; measure each run."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from model.experiments.common import Data, batch_generator, fresh_model, sample_index
from model.families.mlp import MLP, RECIPE
from model.recipe import Recipe
from model.training.examples import evaluate
from model.training.loop import train_loop

SATURATED = 0.99  # |tanh| above this sits on a flat tail: its gradient 1 - h^2 is below 0.02
HISTOGRAM_BINS = 50
PROBE_ROWS = 20_000  # training windows whose activations measure saturation at init
VAL_POINTS = 40  # val evaluations per run
PARAM_QUANTILES = (0.01, 0.99)  # InitRun.param_range: the band of all parameters after training


@dataclass(frozen=True)
class InitSpec:
    """One run: a label, an init scheme (see model.families.mlp.initialise) and the lr after the drop."""

    label: str
    init: str
    lr_after: float = RECIPE.lr_after


SCHEMES = (
    InitSpec("randn", "randn"),
    InitSpec("uniform:0,1", "uniform:0,1"),
    InitSpec("uniform:-2,2", "uniform:-2,2"),
    InitSpec("uniform:0,4", "uniform:0,4"),
    InitSpec("uniform:0.9,1.1", "uniform:0.9,1.1"),
    InitSpec("uniform:0.1,0.3", "uniform:0.1,0.3"),
    InitSpec("uniform:-4,0", "uniform:-4,0"),
    InitSpec("constant:1", "constant:1"),
    InitSpec("scaled", "scaled"),
)
# Control for claim 2: U[0,1) again, but RECIPE.lr throughout, so any narrowing at the drop is not the lr's.
NO_DROP_CONTROL = InitSpec("uniform:0,1 (no lr drop)", "uniform:0,1", lr_after=RECIPE.lr)
# Control for claim 4: all-equal like constant:1 (so symmetric), but small, so no tanh unit is saturated.
SMALL_CONSTANT_CONTROL = InitSpec("constant:0.01", "constant:0.01")
CONTROLS = (NO_DROP_CONTROL, SMALL_CONSTANT_CONTROL)


@dataclass
class InitialState:
    """The model at initialisation, before any step."""

    train_loss: float  # over the whole training split
    saturation: float  # fraction of hidden tanh outputs with |h| > 0.99 on the probe windows
    histogram: torch.Tensor  # counts of hidden tanh outputs in HISTOGRAM_BINS equal bins over [-1, 1]
    param_std: float  # std of all parameters pooled
    logit_spread: float  # mean over probe windows of the std of the logits across characters


@dataclass
class InitRun:
    spec: InitSpec
    recipe: Recipe
    initial: InitialState
    step_losses: torch.Tensor  # minibatch loss per step; step_losses[0] is the loss at init
    val_points: list[tuple[int, float]]
    train_loss: float  # whole training split, after training
    val_loss: float  # whole val split, after training
    wall_seconds: float  # training loop, periodic val evaluations included
    unit_spread: float  # after training: largest difference between any hidden unit and unit 0
    param_range: tuple[float, float]  # after training: PARAM_QUANTILES of all parameters

    @property
    def decay_step(self) -> int:
        return self.recipe.decay_step


@torch.no_grad()
def initial_state(model: MLP, data: Data) -> InitialState:
    h = model.hidden_activations(data.train[0][sample_index(len(data.train[1]), PROBE_ROWS)])
    logits = model.output(h)
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    return InitialState(
        train_loss=evaluate(model, data.train),
        saturation=(h.abs() > SATURATED).float().mean().item(),
        histogram=torch.histc(h, bins=HISTOGRAM_BINS, min=-1.0, max=1.0),
        param_std=params.std().item(),
        logit_spread=logits.std(dim=1).mean().item(),
    )


@dataclass(frozen=True)
class SurveyRow:
    init: str
    n_hidden: int
    losses: tuple[float, ...]  # loss at init on the probe windows, one per init seed 0, 1, ...


@torch.no_grad()
def initial_loss_survey(
    data: Data,
    inits: tuple[str, ...] = ("randn", "uniform:0,1"),
    widths: tuple[int, ...] = (100,),
    seeds: int = 5,
) -> list[SurveyRow]:
    """Loss at init over several init seeds and hidden widths (the reference width always included)."""
    index = sample_index(len(data.train[1]), PROBE_ROWS)
    x, y = data.train[0][index], data.train[1][index]
    rows = []
    for width in sorted({*widths, data.config.n_hidden}):
        config = replace(data.config, n_hidden=width)
        for init in inits:
            models = (MLP(config, init, torch.Generator().manual_seed(seed)) for seed in range(seeds))
            rows.append(SurveyRow(init, width, tuple(F.cross_entropy(m(x), y).item() for m in models)))
    return rows


@torch.no_grad()
def unit_spread(model: MLP) -> float:
    """Largest |difference| between hidden unit 0 and any other unit: its weights in, bias, weights out.

    Zero means every hidden unit computes the same function (the symmetry an all-equal init keeps).
    """
    rows = torch.cat([model.hidden.weight, model.hidden.bias[:, None], model.output.weight.T], dim=1)
    return (rows - rows[:1]).abs().max().item()


@torch.no_grad()
def param_range(model: MLP) -> tuple[float, float]:
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    low, high = torch.quantile(params, torch.tensor(PARAM_QUANTILES)).tolist()
    return low, high


def scheme_recipe(spec: InitSpec, steps: int) -> Recipe:
    """The reference recipe over `steps` (same batch, lr and drop point), `spec`'s lr after the drop."""
    return RECIPE.with_(steps=steps, lr_after=spec.lr_after, eval_every=max(1, steps // VAL_POINTS))


def run_scheme(spec: InitSpec, data: Data, steps: int, progress: bool = True) -> InitRun:
    """Train a fresh model from `spec` by `scheme_recipe`: the reference schedule shape over `steps`."""
    model = fresh_model(data, spec.init)
    initial = initial_state(model, data)
    recipe = scheme_recipe(spec, steps)
    history = train_loop(
        model, data.train, recipe, batch_generator(), data.val, progress=progress, desc=spec.label
    )
    return InitRun(
        spec=spec,
        recipe=recipe,
        initial=initial,
        step_losses=history.step_losses,
        val_points=history.val_points,
        train_loss=evaluate(model, data.train),
        val_loss=evaluate(model, data.val),
        wall_seconds=history.wall_seconds,
        unit_spread=unit_spread(model),
        param_range=param_range(model),
    )


def run_init_schemes(
    data: Data, steps: int, specs: tuple[InitSpec, ...] = (*SCHEMES, *CONTROLS), progress: bool = True
) -> list[InitRun]:
    """Every scheme in `specs`, one after another in this process, on the same data and seed."""
    return [run_scheme(spec, data, steps, progress) for spec in specs]
