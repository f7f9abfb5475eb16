"""Sampler registry: spec name -> Optuna sampler, with the SLO constraint wired where Optuna supports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.space import grid_space
from search.spec import SearchSpec


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose exhaustion is checked by the controller (`is_exhausted`).

    Optuna's GridSampler calls `study.stop()` after the last grid point, which only works inside
    `study.optimize`; the ask/tell controller checks `is_exhausted` before each batch instead.
    """

    def after_trial(self, study: Any, trial: FrozenTrial, state: Any, values: Any) -> None:
        return None


def _tpe(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=spec.seed,
        multivariate=True,
        constant_liar=True,
        n_startup_trials=min(10, max(2, (spec.n_trials or 20) // 4)),
    )


def _gp(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(
        seed=spec.seed,
        n_startup_trials=min(10, max(2, (spec.n_trials or 20) // 4)),
    )


def _nsgaii(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    population = max(4, min(50, (spec.n_trials or 50) // 4))
    return optuna.samplers.NSGAIISampler(
        seed=spec.seed,
        population_size=population,
    )


def _random(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=spec.seed)


def _grid(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    return AskTellGridSampler(grid_space(spec), seed=spec.seed)


SAMPLER_REGISTRY: dict[str, Callable[[SearchSpec], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "gp": _gp,
    "nsgaii": _nsgaii,
    "random": _random,
    "grid": _grid,
}
"""Random and grid samplers ignore constraints when sampling; results are still ranked feasible-first."""


def make_sampler(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    """Build the spec's sampler (constraints reach it through the trials: ``Trial.set_constraint``)."""
    return SAMPLER_REGISTRY[spec.sampler_name](spec)
