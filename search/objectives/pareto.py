"""pareto: maximise throughput and minimise a latency metric at a fixed rate (NSGA-II by default)."""

from __future__ import annotations

from optuna.trial import TrialState

from search.objectives.base import FixedRateObjective, PendingTrial, TrialResult, throughput_value


class Pareto(FixedRateObjective):
    """Two objectives; with an SLO given, attainment >= target is a constraint on the front as well."""

    @property
    def metric_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.spec.metric, self.spec.latency_metric)

    def _scored(self, p: PendingTrial) -> TrialResult:
        m = p.measurements[self.rate]
        values = (throughput_value(m, self.spec.metric), float(m[self.spec.latency_metric]))
        constraints = (self.violation(m),) if self.target is not None else None
        return TrialResult(TrialState.COMPLETE, values=values, constraints=constraints)
