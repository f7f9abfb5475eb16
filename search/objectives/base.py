"""The objective contract: which rates a config still needs measured, and its Optuna values once it has them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from search.evaluator import TrialOutcome
from search.spec import SearchSpec

MEASUREMENTS_ATTR = "measurements"
"""User attr: list of per-rate result rows ({"rate": r, vLLM scalar keys..., "slo_attainment": a, ...})."""


@dataclass
class PendingTrial:
    """An asked trial on its way through the evaluator."""

    trial: optuna.Trial
    overrides: dict[str, Any]
    engine_args: dict[str, Any]
    measurements: dict[float, dict[str, Any]] = field(default_factory=dict)
    """Rate -> result row already taken for this config (inherited by a retried trial)."""
    error: str | None = None
    """Why its evaluation failed (after the orchestrator's retries)."""
    pruned: str | None = None
    """Why it was not run (vLLM would refuse it, or a spec constraint excludes it)."""

    def record(self, outcome: TrialOutcome) -> None:
        """Take an outcome's rows (or its error / pruning reason); rows are stored on the trial at once."""
        if outcome.status == "pruned":
            self.pruned = outcome.error or "pruned"
        elif not outcome.ok:
            self.error = outcome.error or "evaluator reported failure without a reason"
        else:
            for rate, row in outcome.metrics.items():
                self.measurements[float(rate)] = dict(row)
            rows = [{"rate": r, **m} for r, m in sorted(self.measurements.items())]
            self.trial.set_user_attr(MEASUREMENTS_ATTR, rows)


@dataclass(frozen=True)
class TrialResult:
    """How to tell Optuna about one trial."""

    state: TrialState
    values: tuple[float, ...] | None = None
    constraints: tuple[float, ...] | None = None
    """Constraint values, > 0 = violated (stored as a user attr before telling)."""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """Extra user attrs (e.g. the capacity bracket)."""


class Objective(ABC):
    """Turns a config's measurements into Optuna values.

    Contract: ``next_rates`` names the rates still to measure for a trial (``()`` when it has what it needs);
    ``result`` is called once ``next_rates`` returns ``()`` or the trial failed or was pruned, and turns it into
    a TrialResult. SLO attainment is never computed here: it is the trial's ``slo_attainment`` (llm_emu.slo),
    compared with ``target``, the spec's ``slo.attainment``.
    """

    metric_names: tuple[str, ...] = ()

    def __init__(self, spec: SearchSpec, target: float | None) -> None:
        self.spec = spec
        self.target = target
        """The SLO attainment target (None without an SLO)."""

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna study directions."""
        return self.spec.directions

    @abstractmethod
    def next_rates(self, p: PendingTrial) -> tuple[float, ...]:
        """Rates to measure next for this config, together on one server; () when done."""

    @abstractmethod
    def _scored(self, p: PendingTrial) -> TrialResult:
        """The result of a trial with all its measurements."""

    def result(self, p: PendingTrial) -> TrialResult:
        """FAIL (with the error), PRUNED (with the reason) or the scored result."""
        if p.pruned is not None:
            return TrialResult(TrialState.PRUNED, attrs={"infeasible": [p.pruned]})
        if p.error is not None:
            return TrialResult(TrialState.FAIL, attrs={"error": p.error})
        return self._scored(p)

    def violation(self, row: Mapping[str, Any]) -> float:
        """SLO constraint value of one measured rate (> 0 = violated): target - the trial's attainment."""
        assert self.target is not None
        return self.target - float(row["slo_attainment"])


def throughput_value(metrics: Mapping[str, Any], metric: str) -> float:
    """The throughput metric of a result row."""
    value = metrics.get(metric)
    if value is None:
        raise KeyError(f"metric {metric!r} missing from the trial's result (keys: {sorted(metrics)[:12]} ...)")
    return float(value)


class FixedRateObjective(Objective):
    """An objective measured once per config at the spec's single ``rate``; subclasses score the result."""

    @property
    def rate(self) -> float:
        """The spec's rate (checked at load)."""
        assert self.spec.rate is not None
        return float(self.spec.rate)

    def next_rates(self, p: PendingTrial) -> tuple[float, ...]:
        """The spec's rate until it is measured."""
        return () if self.rate in p.measurements else (self.rate,)
