"""Turning an Optuna trial into engine-arg overrides (define-by-run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from search.spec import ParamSpec, SearchSpec


def _suggest(trial: optuna.Trial, name: str, p: ParamSpec) -> Any:
    if p.kind == "int":
        assert p.low is not None and p.high is not None  # checked at load
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    if p.kind == "float":
        assert p.low is not None and p.high is not None
        return trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)
    if p.kind == "bool":
        return trial.suggest_categorical(name, [False, True])
    return trial.suggest_categorical(name, list(p.choices))


def _holds(conditions: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    return all(name in config and config[name] == value for name, value in conditions.items())


def suggest_overrides(trial: optuna.Trial, spec: SearchSpec) -> dict[str, Any]:
    """Suggest every active parameter, in spec order, so conditions see the values they depend on.

    A parameter with ``when`` is only suggested (and only becomes part of the config) when its conditions
    hold, which keeps it out of Optuna's search space for trials where vLLM would ignore it.
    """
    overrides: dict[str, Any] = {}
    for name, p in spec.space.items():
        if _holds(p.conditions, overrides):
            overrides[name] = _suggest(trial, name, p)
    return overrides


def grid_space(spec: SearchSpec) -> dict[str, list[Any]]:
    """The grid sampler's search space (finite values checked at load)."""
    return {name: list(p.grid_values() or ()) for name, p in spec.space.items()}
