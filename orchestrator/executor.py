"""Where and how proposals run: prune, skip what is finished, run the rest on Ray actors, read the rows back.

``TrialExecutor`` is the orchestrator's ``search.evaluator.Evaluator``: the grid and the Optuna source both
hand it TrialRequests and get TrialOutcomes back, so pruning, resume, retries, timeouts, results files and the
SLO attainment (computed in the trial) are the same for both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_emu.fsutil import atomic_write_json
from orchestrator.actors import ActorResources
from orchestrator.controller import Controller, ControllerOptions
from orchestrator.results import ResultStore, metric_columns
from orchestrator.runner import ServerRunner, TrialResult, TrialRunner
from orchestrator.spec import SweepSpec
from orchestrator.trials import PrunedTrial, Trial, TrialFactory
from search.evaluator import STATUS_FAILED, STATUS_PRUNED, TrialOutcome, TrialRequest

WALL_TRIAL_MIN_CPUS = 2.0
"""CPUs a wall-clock trial declares at least when the spec's own trials run in virtual time (the re-check of a
virtual search): a server process and the benchmark client need about two busy cores."""


@dataclass(frozen=True)
class ExecutionOptions:
    """How the executor runs trials (from the CLI flags)."""

    resume: bool = True
    """Reuse finished trial files in the output directory."""
    retry_failed: bool = False
    """With resume, run failed trials again."""
    max_parallel: int | None = None
    """Overrides resources.max_parallel."""


def controller_options(spec: SweepSpec, out: Path, clock: str, max_parallel: int | None) -> ControllerOptions:
    """Actor resources and behaviour for trials in ``clock`` (virtual: the engine in-process, actors reused)."""
    from llm_emu.virtual import runner_env_vars

    r = spec.resources
    cpus = r.cpus_per_trial if clock == spec.clock else max(r.cpus_per_trial, WALL_TRIAL_MIN_CPUS)
    mem = int(r.memory_gb_per_trial * 2**30) if r.memory_gb_per_trial else None
    virtual = clock == "virtual"
    return ControllerOptions(
        out_dir=str(out.resolve()),
        resources=ActorResources(cpus, mem, r.hardware_resource if spec.kind == "real" else None),
        max_parallel=max_parallel or r.max_parallel, retries=spec.retries, trial_timeout_s=r.trial_timeout_s,
        env_vars=runner_env_vars() if virtual else {}, reuse_actors=virtual,
    )


class TrialExecutor:
    """Runs batches of TrialRequests on Ray; use as a context manager (kept actors are killed on exit)."""

    def __init__(self, spec: SweepSpec, out: Path, options: ExecutionOptions, runner: TrialRunner | None = None,
                 on_result: Callable[[Trial, TrialResult], None] | None = None,
                 connect: Callable[[], None] | None = None) -> None:
        """Args:
            spec: the sweep.
            out: its output directory.
            options: resume, retry_failed, max_parallel.
            runner: runs one trial attempt in an actor (None: ServerRunner).
            on_result: called with each finished trial (progress bars).
            connect: called before the first trial runs (connects to Ray; nothing connects when all is done).
        """
        self.spec, self.out, self.options = spec, out, options
        self.runner = runner or ServerRunner()
        self.on_result, self.connect = on_result, connect
        self.factory = TrialFactory(spec)
        self.store = ResultStore(out)
        self.trials: dict[str, Trial] = {}
        """Every trial asked for in this run, in order (keyed by hash)."""
        self.earlier: dict[str, dict[str, Any]] = {}
        """Manifest entries of trials asked by earlier runs of an adaptive source (see ``keep_earlier``)."""
        self.pruned: list[PrunedTrial] = []
        self._ran: set[str] = set()
        self._earlier_pruned: list[dict[str, Any]] = []
        self._controllers: dict[str, Controller] = {}

    def __enter__(self) -> TrialExecutor:
        return self

    def keep_earlier(self) -> None:
        """Keep the trials earlier runs recorded in OUT/sweep.json in the results (a resumed search asks only
        new configs, but its results cover the whole study)."""
        try:
            manifest = json.loads((self.out / "sweep.json").read_text())
        except (OSError, ValueError):
            return
        self.earlier = {t["hash"]: t for t in manifest.get("trials", []) if "hash" in t}
        self._earlier_pruned = list(manifest.get("pruned", []))

    @property
    def n_pruned(self) -> int:
        """Configs pruned in this run and (``keep_earlier``) earlier runs."""
        mine = {(p.index, p.label) for p in self.pruned}
        return len(mine) + sum((p.get("number"), p.get("config")) not in mine for p in self._earlier_pruned)

    @property
    def hashes(self) -> list[str]:
        """Every trial of the results: earlier runs' (``keep_earlier``) and this run's."""
        return list(dict.fromkeys([*self.earlier, *self.trials]))

    def __exit__(self, *exc: object) -> None:
        for controller in self._controllers.values():
            controller.close()

    def evaluate(self, requests: list[TrialRequest]) -> list[TrialOutcome]:
        """Prune, run what is not finished (in parallel), and answer one outcome per request, in order."""
        planned: list[tuple[Trial | None, str | None]] = []
        for request in requests:
            reason = self.factory.prune_reason(request)
            if reason:
                self.pruned.append(PrunedTrial(request.number, tuple(request.overrides.items()), reason))
            planned.append((None if reason else self.factory.trial(request), reason))
        trials = [t for t, _ in planned if t is not None]
        todo = {t.hash: t for t in trials if self._needs_run(t)}
        if todo and self.connect is not None:
            self.connect()
        for clock in sorted({t.clock for t in todo.values()}):
            for other, controller in self._controllers.items():
                if other != clock:
                    controller.close()  # actors kept for reuse would hold CPUs the other clock's trials need
            self._controller(clock).run([t for t in todo.values() if t.clock == clock])
        self._ran.update(todo)
        self.trials.update((t.hash, t) for t in trials)
        self.store.combine(self.hashes)
        self.write_manifest()
        return [self._outcome(t, reason) for t, reason in planned]

    def _needs_run(self, trial: Trial) -> bool:
        if trial.hash in self._ran:
            return False
        return not (self.options.resume and self.store.is_done(trial.hash, self.options.retry_failed))

    def _controller(self, clock: str) -> Controller:
        if clock not in self._controllers:
            opts = controller_options(self.spec, self.out, clock, self.options.max_parallel)
            self._controllers[clock] = Controller(self.runner, self.store, opts, self.on_result)
        return self._controllers[clock]

    def _outcome(self, trial: Trial | None, pruned: str | None) -> TrialOutcome:
        if trial is None:
            return TrialOutcome(metrics={}, status=STATUS_PRUNED, error=pruned)
        df = self.store.read_trial(trial.hash)
        if df is None or df.empty:
            return TrialOutcome(metrics={}, status=STATUS_FAILED, error="no result recorded", trial_hash=trial.hash)
        if (df["status"] != "ok").any():
            return TrialOutcome(metrics={}, status=STATUS_FAILED, error=str(df["error"].iloc[0]),
                                trial_hash=trial.hash)
        cols = [*metric_columns(df), "meets_slo", "clock"]
        metrics = {float(row["request_rate"]): {c: row[c] for c in cols if c in row and not _missing(row[c])}
                   for _, row in df.iterrows()}
        return TrialOutcome(metrics=metrics, trial_hash=trial.hash)

    def write_manifest(self) -> None:
        """OUT/sweep.json: the spec's trials so far (hash, config, clock, engine args, flags) and pruned configs."""
        spec = self.spec
        entries = dict(self.earlier)
        entries.update((t.hash, {"hash": t.hash, "number": t.index, "config": t.label, "clock": t.clock,
                                 "engine_args": t.engine, "vllm_flags": t.vllm_flags()}) for t in self.trials.values())
        pruned = [{"number": p.index, "config": p.label, "reason": p.reason} for p in self.pruned]
        atomic_write_json(self.out / "sweep.json", {
            "name": spec.name, "proposal_source": "search" if spec.search else "grid", "clock": spec.clock,
            "trials": list(entries.values()),
            "pruned": [*(p for p in self._earlier_pruned if p not in pruned), *pruned],
            "workload": asdict(spec.workload), "slo": asdict(spec.slo) if spec.slo else None,
        })


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
