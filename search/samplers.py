"""Sampler registry: spec name -> Optuna sampler, with the SLO constraint wired where Optuna supports it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.space import grid_space
from search.spec import SearchSpec

CONSTRAINTS_ATTR = "constraints"
"""User attr holding a trial's constraint values (> 0 = violated), read by `constraints_func`."""


def constraints_func(trial: FrozenTrial) -> Sequence[float]:
    """Optuna constraints_func: the values the objective stored on the trial (none stored = feasible)."""
    return tuple(trial.user_attrs.get(CONSTRAINTS_ATTR, (0.0,)))


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose exhaustion is checked by the controller (`is_exhausted`).

    Optuna's GridSampler calls `study.stop()` after the last grid point, which only works inside
    `study.optimize`; the ask/tell controller checks `is_exhausted` before each batch instead.
    """

    def after_trial(self, study: Any, trial: FrozenTrial, state: Any, values: Any) -> None:
        return None


def _tpe(spec: SearchSpec, constrained: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=spec.seed, multivariate=True, group=True, constant_liar=True,
        n_startup_trials=min(10, max(2, (spec.n_trials or 20) // 4)),
        constraints_func=constraints_func if constrained else None,
    )


def _gp(spec: SearchSpec, constrained: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(
        seed=spec.seed, n_startup_trials=min(10, max(2, (spec.n_trials or 20) // 4)),
        constraints_func=constraints_func if constrained else None,
    )


def _nsgaii(spec: SearchSpec, constrained: bool) -> optuna.samplers.BaseSampler:
    population = max(4, min(50, (spec.n_trials or 50) // 4))
    return optuna.samplers.NSGAIISampler(
        seed=spec.seed, population_size=population,
        constraints_func=constraints_func if constrained else None,
    )


def _random(spec: SearchSpec, constrained: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=spec.seed)


def _grid(spec: SearchSpec, constrained: bool) -> optuna.samplers.BaseSampler:
    return AskTellGridSampler(grid_space(spec), seed=spec.seed)


SAMPLER_REGISTRY: dict[str, Callable[[SearchSpec, bool], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe, "gp": _gp, "nsgaii": _nsgaii, "random": _random, "grid": _grid,
}
"""Random and grid samplers take no constraints; the controller ranks feasibility itself for them."""


def make_sampler(spec: SearchSpec, *, constrained: bool) -> optuna.samplers.BaseSampler:
    """Build the spec's sampler; `constrained` wires the SLO constraint into samplers that accept one."""
    return SAMPLER_REGISTRY[spec.sampler](spec, constrained)
