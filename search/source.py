"""An Optuna study as a proposal source: ask/tell in batches, the study in an RDB, resumable.

Re-running the same command resumes: the study is loaded from its storage, trials orphaned by a killed
controller are failed and retried (RetryHeartbeatStaleTrialCallback), and only the remaining budget is asked.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search.evaluator import TrialOutcome, TrialRequest, config_key
from search.objectives import Objective, PendingTrial, TrialResult, make_objective
from search.objectives.base import MEASUREMENTS_ATTR
from search.samplers import AskTellGridSampler, make_sampler
from search.space import suggest_overrides
from search.storage import (
    RETRY_OF_ATTR,
    SKIPPED_ATTR,
    Heartbeat,
    counted_trials,
    make_storage,
    quiet,
    recover_stale,
    trial_id,
)
from search.task import (
    BASELINE_ATTR,
    CONSTRAINTS_ATTR,
    SearchResult,
    SearchTask,
    baseline_trial,
    best_trials,
    ranked_trials,
)

_CONSTRAINT_NAMES = ("slo_attainment",)


def open_study(task: SearchTask, objective: Objective, *, fresh: bool = False) -> tuple[optuna.Study, RDBStorage]:
    """Create or load the task's study (and return its RDB storage, which Optuna wraps in a cache).

    Args:
        task: the search.
        objective: gives the study's directions and metric names.
        fresh: delete an existing study of the same name first (``--no-resume``).
    """
    task.out_dir.mkdir(parents=True, exist_ok=True)
    storage = make_storage(task.storage_url, task.search)
    if fresh and task.study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=task.study_name, storage=storage)
    study = optuna.create_study(storage=storage, sampler=make_sampler(task.search), study_name=task.study_name,
                                directions=objective.directions, load_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.metric_names))
    return study, storage


def _enqueue_baseline(study: optuna.Study, task: SearchTask) -> None:
    if task.search.baseline and not any(t.user_attrs.get(BASELINE_ATTR) for t in study.get_trials(deepcopy=False)):
        study.enqueue_trial({}, user_attrs={BASELINE_ATTR: True})


def _enqueue_failed(study: optuna.Study) -> int:
    """Enqueue once more every evaluated config whose trial failed (``--retry-failed``); returns how many."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_OF_ATTR] for t in trials if RETRY_OF_ATTR in t.user_attrs}
    todo = [t for t in trials if t.state == TrialState.FAIL and "error" in t.user_attrs and t.number not in retried]
    for t in todo:
        attrs = {k: t.user_attrs[k] for k in (BASELINE_ATTR, "config_key") if k in t.user_attrs}
        study.enqueue_trial(t.params, user_attrs={**attrs, RETRY_OF_ATTR: t.number})
    return len(todo)


def _tell(study: optuna.Study, p: PendingTrial, r: TrialResult) -> None:
    for key, value in r.attrs.items():
        p.trial.set_user_attr(key, value)
    if r.constraints is not None:
        p.trial.set_user_attr(CONSTRAINTS_ATTR, list(r.constraints))
        for i, value in enumerate(r.constraints):
            # Optuna's constraint machinery: read by TPE/GP/NSGA-II and by study.best_trials.
            p.trial.set_constraint(_CONSTRAINT_NAMES[i] if i < len(_CONSTRAINT_NAMES) else str(i), value)
    study.tell(p.trial, list(r.values) if r.values is not None else None, state=r.state)


class OptunaSource:
    """Asks an Optuna study for configs in batches of ``parallelism``; use as a context manager.

    Every asked trial becomes one TrialRequest per round of measurement (one round for fixed-rate objectives,
    a few for the capacity bisection, all trials of a batch in lockstep); it is told to Optuna once the
    objective has what it needs, or when its evaluation failed or was pruned.
    """

    def __init__(self, task: SearchTask, *, resume: bool = True, retry_failed: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.task, self.resume, self.retry_failed, self.log = task, resume, retry_failed, log
        self.objective = make_objective(task.search, task.slo.attainment if task.slo else None)
        self.verified: dict[int, dict[float, dict[str, Any]]] = {}
        self._inflight: dict[int, PendingTrial] = {}
        self._study: optuna.Study | None = None
        self._storage: RDBStorage | None = None
        self._hb: Heartbeat | None = None
        self._started = 0.0

    def __enter__(self) -> OptunaSource:
        self._study, self._storage = open_study(self.task, self.objective, fresh=not self.resume)
        recover_stale(self._study, self._storage, self.task.search, self.log)
        _enqueue_baseline(self._study, self.task)
        if self.retry_failed and (n := _enqueue_failed(self._study)):
            self.log(f"search: {n} failed trial(s) enqueued again (--retry-failed)")
        self._hb = Heartbeat(self._storage, self.task.search.heartbeat_interval_s).__enter__()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hb is not None:
            self._hb.__exit__(None, None, None)

    @property
    def study(self) -> optuna.Study:
        """The open study."""
        if self._study is None:
            raise RuntimeError("OptunaSource is used outside its `with` block")
        return self._study

    def describe(self) -> list[str]:
        """The search's objective, sampler, budget and space, and what its storage already holds."""
        s = self.task.search
        if s.capacity is not None:
            target = f"highest rate meeting the SLO in [{s.capacity.low:g}, {s.capacity.high:g}] req/s"
        else:
            versus = f" vs {s.latency_metric}" if s.objective == "pareto" else ""
            target = f"{s.metric}{versus} at {s.rate} req/s"
        extras = [f"sampler {s.sampler_name}", f"n_trials {s.n_trials or '-'}", f"timeout_s {s.timeout_s or '-'}",
                  f"{s.parallelism} per batch"] + (["baseline first"] if s.baseline else [])
        if s.verify_top_k:
            extras.append(f"then the best {s.verify_top_k} again in wall-clock time")
        lines = [f"search: {s.objective} ({target}), " + ", ".join(extras)]
        lines += [f"  space {name}: {_show_param(p)}" for name, p in s.space.items()]
        lines.append(f"  study {self.task.study_name} in {self.task.storage_url}: {self._stored()}")
        return lines

    def _stored(self) -> str:
        """How many trials the storage already counts (read only; a missing SQLite file is not created)."""
        url = self.task.storage_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            return "new"
        try:
            with quiet():
                study = optuna.load_study(study_name=self.task.study_name, storage=url)
        except KeyError:
            return "new"
        n = len(counted_trials(study))
        return f"{n} trials done" + (" (ignored: --no-resume)" if not self.resume else "")

    def preview(self) -> None:
        """Adaptive: nothing is known in advance."""
        return None

    def ask(self) -> list[TrialRequest]:
        """The next round of the trials in flight, else a new batch; [] when the budget is spent."""
        while not self._inflight:
            if not self._ask_batch():
                return []
        return [self._request(p, rates) for p in self._inflight.values()
                if (rates := self.objective.next_rates(p))]

    def tell(self, request: TrialRequest, outcome: TrialOutcome) -> None:
        """Record one outcome; the trial is told to Optuna once it needs no more measurements."""
        if request.clock == "wall" and self.task.clock != "wall":
            self.verified[request.number] = {float(r): dict(m) for r, m in outcome.metrics.items()}
            return
        p = self._inflight[request.number]
        p.record(outcome)
        if p.pruned is not None or p.error is not None or not self.objective.next_rates(p):
            self._finish(p)

    def verify_requests(self) -> list[TrialRequest]:
        """The best ``verify_top_k`` configs again, in wall-clock time ([] when the search ran in wall time)."""
        k = self.task.search.verify_top_k
        if not k or self.task.clock == "wall":
            return []
        out = []
        for t in ranked_trials(self.study, self.task.search)[:k]:
            # capacity: is the found capacity a passing rate in wall-clock time too?
            rate = float(t.values[0]) if self.task.search.objective == "capacity" else float(self.task.search.rate or 0)
            if rate > 0:
                out.append(TrialRequest(t.user_attrs.get("engine_args", {}), (rate,),
                                        overrides=t.user_attrs.get("overrides", {}), number=t.number, clock="wall"))
        return out

    def result(self) -> SearchResult:
        """What the study holds now."""
        return SearchResult(self.study, best_trials(self.study, self.task.search), baseline_trial(self.study),
                            self.task, verified=dict(self.verified))

    def _request(self, p: PendingTrial, rates: tuple[float, ...]) -> TrialRequest:
        return TrialRequest(p.engine_args, rates, overrides=p.overrides, number=p.trial.number)

    def _budget_left(self) -> int:
        spec = self.task.search
        if spec.timeout_s is not None and time.monotonic() - self._started > spec.timeout_s:
            self.log(f"search: timeout_s={spec.timeout_s} reached")
            return 0
        if spec.n_trials is None:
            return 1 << 30
        running = len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))  # a live peer's
        return spec.n_trials - len(counted_trials(self.study)) - running

    def _ask_batch(self) -> bool:
        """Ask up to ``parallelism`` new configs into flight; False when nothing more can be asked."""
        left = self._budget_left()
        if left <= 0:
            return False
        asked = self._ask_new(min(self.task.search.parallelism, left))
        for p in asked:
            if self.objective.next_rates(p):
                self._inflight[p.trial.number] = p
            else:  # a retried trial that inherited every measurement it needs
                self._finish(p)
        self.log(f"search: {len(counted_trials(self.study))}/{self.task.search.n_trials or '-'} trials done")
        return bool(asked)

    def _ask_new(self, size: int) -> list[PendingTrial]:
        """Ask ``size`` configs not tried before (a proposal equal to a tried config is skipped, not counted)."""
        spec, study = self.task.search, self.study
        batch: list[PendingTrial] = []
        seen, dupes = _tried_keys(study), 0
        while len(batch) < size and dupes < spec.max_duplicate_asks:
            waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))  # enqueued: asked first
            if not waiting and isinstance(study.sampler, AskTellGridSampler) and study.sampler.is_exhausted(study):
                break
            with quiet():
                trial = study.ask()
            p = _pending(trial, self.task)
            key = config_key(p.engine_args)
            if key in seen and trial.user_attrs.get("config_key") != key:
                trial.set_user_attr(SKIPPED_ATTR, "duplicate config")
                study.tell(trial, state=TrialState.FAIL)
                dupes += 1
                continue
            seen.add(key)
            assert self._hb is not None and self._storage is not None
            self._hb.add(trial_id(self._storage, study, trial.number))
            for name, value in (("config_key", key), ("overrides", p.overrides), ("engine_args", p.engine_args)):
                trial.set_user_attr(name, value)
            batch.append(p)
        if dupes >= spec.max_duplicate_asks:
            self.log(f"search: {dupes} proposals in a row were already-tried configs; the space counts as exhausted")
        return batch

    def _finish(self, p: PendingTrial) -> None:
        _tell(self.study, p, self.objective.result(p))
        assert self._hb is not None and self._storage is not None
        self._hb.remove(trial_id(self._storage, self.study, p.trial.number))
        self._inflight.pop(p.trial.number, None)


def _tried_keys(study: optuna.Study) -> set[str]:
    return {
        t.user_attrs["config_key"]
        for t in study.get_trials(deepcopy=False)
        if "config_key" in t.user_attrs and SKIPPED_ATTR not in t.user_attrs and t.state != TrialState.WAITING
    }


def _pending(trial: optuna.Trial, task: SearchTask) -> PendingTrial:
    baseline = bool(trial.user_attrs.get(BASELINE_ATTR))
    overrides = {} if baseline else suggest_overrides(trial, task.search)
    engine_args = {**task.engine_args, **overrides}
    inherited = {float(m["rate"]): dict(m) for m in trial.user_attrs.get(MEASUREMENTS_ATTR, [])}
    return PendingTrial(trial, overrides, engine_args, measurements=inherited)


def _show_param(p: Any) -> str:
    if p.kind == "bool":
        text = "true/false"
    elif p.kind == "categorical":
        text = "one of " + ", ".join(str(c) for c in p.choices)
    else:
        text = f"{p.kind} [{p.low}, {p.high}]" + (" log" if p.log else "") + (f" step {p.step}" if p.step else "")
    return text + (f" when {p.conditions}" if p.when else "")
