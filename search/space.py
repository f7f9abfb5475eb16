"""Turning an Optuna trial into engine-arg overrides (define-by-run), and checking constraints."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import optuna

from search.spec import Constraint, ParamSpec, SearchSpec

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def _suggest(trial: optuna.Trial, p: ParamSpec) -> Any:
    if p.type == "int":
        step = int(p.step) if p.step is not None else 1
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=step, log=p.log)  # type: ignore[arg-type]
    if p.type == "float":
        return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)  # type: ignore[arg-type]
    if p.type == "bool":
        return trial.suggest_categorical(p.name, [False, True])
    return trial.suggest_categorical(p.name, list(p.choices))


def _holds(conditions: tuple[tuple[str, Any], ...], config: Mapping[str, Any]) -> bool:
    return all(name in config and config[name] == value for name, value in conditions)


def suggest_overrides(trial: optuna.Trial, spec: SearchSpec) -> dict[str, Any]:
    """Suggest every active parameter, in spec order, so conditions see the values they depend on.

    A parameter with `when` is only suggested (and only becomes part of the config) when its conditions
    hold, which keeps it out of Optuna's search space for trials where vLLM would ignore it.
    """
    overrides: dict[str, Any] = {}
    for p in spec.space:
        if _holds(p.when, overrides):
            overrides[p.name] = _suggest(trial, p)
    return overrides


def _resolve(ref: Any, config: Mapping[str, Any]) -> Any:
    return config.get(ref) if isinstance(ref, str) else ref


def violated_constraints(spec: SearchSpec, config: Mapping[str, Any]) -> list[str]:
    """Human-readable constraints the full engine config breaks ([] = feasible).

    A constraint whose operands are absent from the config (an inactive conditional parameter) is skipped.
    """
    broken = []
    for c in spec.constraints:
        if (c.unless and _holds(c.unless, config)) or (c.when and not _holds(c.when, config)):
            continue
        left, right = _resolve(c.left, config), _resolve(c.right, config)
        if left is None or right is None:
            continue
        if not _OPS[c.op](left, right):
            broken.append(_describe(c, left, right))
    return broken


def _describe(c: Constraint, left: Any, right: Any) -> str:
    unless = f" unless {dict(c.unless)}" if c.unless else ""
    return f"{c.left} ({left}) {c.op} {c.right} ({right}) does not hold{unless}"


def grid_space(spec: SearchSpec) -> dict[str, list[Any]]:
    """The grid sampler's search space."""
    return {p.name: list(p.grid_values()) for p in spec.space}
