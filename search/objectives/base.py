"""The objective contract: measure a batch of asked trials through an Evaluator, return their results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from search.evaluator import Evaluator, TrialRequest
from search.slo import slo_attainment, summary
from search.spec import SearchSpec

MEASUREMENTS_ATTR = "measurements"
"""User attr: list of per-rate metric summaries ({"rate": r, vLLM scalar keys..., "slo_attainment": a})."""


@dataclass
class PendingTrial:
    """An asked trial on its way through the evaluator."""

    trial: optuna.Trial
    overrides: dict[str, Any]
    engine_args: dict[str, Any]
    measurements: dict[float, dict[str, Any]] = field(default_factory=dict)
    """Rate -> metric summary already taken for this config (inherited by a retried trial)."""
    error: str | None = None


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
    """Turns measurements into Optuna values.

    Contract: `run` returns one TrialResult per pending trial, in order; a trial whose evaluation failed
    gets TrialState.FAIL; it records every measurement on the trial (user attr `measurements`) as soon as
    it arrives, so a killed controller loses nothing that was measured.
    """

    metric_names: tuple[str, ...] = ()

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec

    @property
    def directions(self) -> list[str]:
        return self.spec.directions

    @abstractmethod
    def run(self, batch: list[PendingTrial], evaluator: Evaluator) -> list[TrialResult]:
        """Measure `batch` through `evaluator` and return one result per trial."""

    def measure(self, items: list[tuple[PendingTrial, tuple[float, ...]]], evaluator: Evaluator) -> None:
        """Evaluate each (trial, rates) in one evaluator batch, recording metrics or the error."""
        goodput = self.spec.slo.goodput() if self.spec.slo else {}
        requests = [
            TrialRequest(
                engine_args=p.engine_args,
                rates=rates,
                overrides=p.overrides,
                goodput=goodput,
                trial_number=p.trial.number,
            )
            for p, rates in items
        ]
        outcomes = evaluator.evaluate(requests)
        for (pending, rates), outcome in zip(items, outcomes, strict=True):
            if not outcome.ok:
                pending.error = outcome.error or "evaluator reported failure without a reason"
                continue
            for rate in rates:
                metrics = outcome.metrics[rate]
                row = summary(metrics)
                if self.spec.slo is not None:
                    row["slo_attainment"] = slo_attainment(metrics, self.spec.slo)
                pending.measurements[rate] = row
            pending.trial.set_user_attr(
                MEASUREMENTS_ATTR, [{"rate": r, **m} for r, m in sorted(pending.measurements.items())]
            )

    def failed(self, pending: PendingTrial) -> TrialResult:
        return TrialResult(TrialState.FAIL, attrs={"error": pending.error})


def throughput_value(metrics: Mapping[str, Any], metric: str) -> float:
    """The throughput metric; request_goodput falls back to throughput x attainment when vLLM lacks it."""
    if metric in metrics and metrics[metric] is not None:
        return float(metrics[metric])
    if metric == "request_goodput" and "slo_attainment" in metrics:
        return float(metrics["request_throughput"]) * float(metrics["slo_attainment"])
    raise KeyError(f"metric {metric!r} missing from the benchmark result (keys: {sorted(metrics)[:12]} ...)")


class FixedRateObjective(Objective):
    """An objective measured once per config at the spec's single ``rate``; subclasses score the result."""

    def run(self, batch: list[PendingTrial], evaluator: Evaluator) -> list[TrialResult]:
        rate = float(self.spec.rate)  # type: ignore[arg-type]
        todo = [(p, (rate,)) for p in batch if rate not in p.measurements]
        if todo:
            self.measure(todo, evaluator)
        return [self._result(p, rate) for p in batch]

    @abstractmethod
    def _result(self, p: PendingTrial, rate: float) -> TrialResult:
        """Score one measured (or failed) config."""

