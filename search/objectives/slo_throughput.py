"""slo_throughput: maximise (good)put at a fixed rate, subject to SLO attainment >= target."""

from __future__ import annotations

from optuna.trial import TrialState

from search.objectives.base import FixedRateObjective, PendingTrial, TrialResult, throughput_value


class SloThroughput(FixedRateObjective):
    """One measurement per config at `rate`; the SLO is an Optuna constraint, not a penalty."""

    @property
    def metric_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.spec.metric,)

    def _scored(self, p: PendingTrial) -> TrialResult:
        m = p.measurements[self.rate]
        return TrialResult(TrialState.COMPLETE, values=(throughput_value(m, self.spec.metric),),
                           constraints=(self.violation(m),))
