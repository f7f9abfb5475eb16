"""The orchestrator's side of the search boundary: ``search.evaluator.Evaluator`` on Ray trial actors.

``search/`` decides which engine configs to try and hands them over as TrialRequests; this class turns each
into a Trial (same content hash, same result files as a grid sweep, so a resumed search reuses finished
trials), runs the new ones on Ray actors and answers with one TrialOutcome per request, in order.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.controller import Controller, ControllerOptions
from orchestrator.results import ResultStore, metric_columns
from orchestrator.runner import ServerRunner, TrialRunner
from orchestrator.spec import SLOSpec, SweepSpec
from orchestrator.trials import Trial, make_trial, profile_id


class RayEvaluator:
    """Runs batches of search trials in parallel on Ray (one actor + one server per trial)."""

    def __init__(self, spec: SweepSpec, out_dir: str | Path, options: ControllerOptions,
                 runner: TrialRunner | None = None) -> None:
        self.spec = spec
        self.store = ResultStore(out_dir)
        self.options = options
        self.runner = runner or ServerRunner()
        self._profile_id = profile_id(spec.profile) if spec.kind == "emulated" else None
        self._seen: dict[str, Trial] = {}

    def _slo(self, goodput: Any) -> SLOSpec | None:
        if not goodput:
            return self.spec.slo
        target = self.spec.slo.attainment if self.spec.slo else 0.99
        return SLOSpec(ttft_ms=goodput.get("ttft"), tpot_ms=goodput.get("tpot"), e2el_ms=goodput.get("e2el"),
                       attainment=target)

    def trial_for(self, request: Any) -> Trial:
        """The Trial a search TrialRequest stands for."""
        workload = replace(self.spec.workload, request_rates=tuple(float(r) for r in request.rates))
        return make_trial(
            self.spec, index=int(request.trial_number), engine_args=dict(request.engine_args),
            grid_point=dict(request.overrides), workload=workload, slo=self._slo(request.goodput),
            pid=self._profile_id,
        )

    def evaluate(self, requests: list[Any]) -> list[Any]:
        """Run ``requests`` (search.evaluator.TrialRequest), new ones in parallel; outcomes in order."""
        trials = [self.trial_for(r) for r in requests]
        todo = {t.hash: t for t in trials if not self.store.is_done(t.hash)}
        if todo:
            Controller(self.runner, self.store, self.options).run(list(todo.values()))
        self._seen.update((t.hash, t) for t in trials)
        self.store.combine(self._seen.values())
        return [self._outcome(t) for t in trials]

    def _outcome(self, trial: Trial) -> Any:
        from search.evaluator import STATUS_FAILED, TrialOutcome

        df = self.store.read_trial(trial.hash)
        if df is None or df.empty:
            return TrialOutcome(metrics={}, status=STATUS_FAILED, error="no result recorded")
        if (df["status"] != "ok").any():
            return TrialOutcome(metrics={}, status=STATUS_FAILED, error=str(df["error"].iloc[0]))
        cols = metric_columns(df)
        metrics = {
            float(row["request_rate"]): {c: row[c] for c in cols if not _missing(row[c])}
            for _, row in df.iterrows()
        }
        return TrialOutcome(metrics=metrics)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
