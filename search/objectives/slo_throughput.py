"""slo_throughput: maximise (good)put at a fixed rate, subject to SLO attainment >= target."""

from __future__ import annotations

from optuna.trial import TrialState

from search.evaluator import Evaluator
from search.objectives.base import Objective, PendingTrial, TrialResult, throughput_value


class SloThroughput(Objective):
    """One measurement per config at `rate`; the SLO is an Optuna constraint, not a penalty."""

    @property
    def metric_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.spec.metric,)

    def run(self, batch: list[PendingTrial], evaluator: Evaluator) -> list[TrialResult]:
        rate = float(self.spec.rate)  # type: ignore[arg-type]
        todo = [(p, (rate,)) for p in batch if rate not in p.measurements]
        if todo:
            self.measure(todo, evaluator)
        return [self._result(p, rate) for p in batch]

    def _result(self, p: PendingTrial, rate: float) -> TrialResult:
        if p.error is not None:
            return self.failed(p)
        m = p.measurements[rate]
        assert self.spec.slo is not None
        violation = self.spec.slo.attainment - float(m["slo_attainment"])
        return TrialResult(
            TrialState.COMPLETE, values=(throughput_value(m, self.spec.metric),), constraints=(violation,)
        )
