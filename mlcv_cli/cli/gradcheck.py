"""`mlcv gradcheck`: the analytic gradient of a loss against centred differences."""

from __future__ import annotations

import sys

import click

from ..core.gradcheck import verdict
from ..errors import UsageError
from ..models import registry
from . import render
from .common import CONTEXT

_PENALTIES = tuple(dict.fromkeys(p for name in registry.gradcheckable() for p in registry.get(name).gradcheck_penalties))


@click.command(context_settings=CONTEXT)
@click.option("--model", "model_type", type=click.Choice(registry.gradcheckable()), required=True, help="Which model's loss to check.")
@click.option("--reg", default=0.1, show_default=True, type=click.FloatRange(0), help="Regularization strength.")
@click.option("--checks", default=10, show_default=True, type=click.IntRange(1, 1000), help="Number of random weights checked.")
@click.option("--penalty", default="l2", show_default=True, type=click.Choice(_PENALTIES), help="Regularizer (l1 has a kink at 0 too).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random problem.")
def gradcheck(model_type, reg, checks, penalty, seed):
    """Compare the analytic gradient with a centred numerical one (float64).

    Relative error |a - n| / max(|a| + |n|, tiny): below 1e-7 is good. The SVM loss (and a ReLU)
    has kinks (max(0, .)); an entry within h of one can fail there, and is marked.
    """
    model = registry.get(model_type)
    if penalty not in model.gradcheck_penalties:
        raise UsageError(f"--penalty: a {model_type} model is checked with {' or '.join(model.gradcheck_penalties)}, found {penalty}")
    rows = model.gradcheck(reg, checks, seed, penalty)
    notes, worst, passed = verdict(rows)
    render.show("gradcheck", {
        "model": model_type, "reg": reg, "penalty": penalty, "max_relative_error": worst, "passed": passed,
        "rows": [{"index": index, "analytic": analytic, "numerical": numeric, "relative_error": rel_error, "note": note}
                 for (index, analytic, numeric, rel_error, _), note in zip(rows, notes)],
    })
    if not passed:
        sys.exit(1)
