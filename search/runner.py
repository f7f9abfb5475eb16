"""The search controller: Optuna ask/tell in batches, trials run by an Evaluator, study in an RDB.

Re-running the same command resumes: the study is loaded from its storage, trials orphaned by a killed
controller are failed and retried (RetryFailedTrialCallback), and only the remaining budget is asked.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from search.errors import SearchError
from search.evaluator import Evaluator, config_key
from search.objectives import Objective, PendingTrial, TrialResult, make_objective
from search.objectives.base import MEASUREMENTS_ATTR
from search.samplers import CONSTRAINTS_ATTR, AskTellGridSampler, make_sampler
from search.space import suggest_overrides, violated_constraints
from search.spec import SearchSpec, parse_search_spec
from search.storage import (
    SKIPPED_ATTR,
    Heartbeat,
    counted_trials,
    default_storage_url,
    make_storage,
    quiet,
    recover_stale,
)

BASELINE_ATTR = "baseline"
_CONSTRAINT_NAMES = ("slo_attainment",)


@dataclass(frozen=True)
class SearchTask:
    """Everything a search needs besides the evaluator: the parsed section plus the sweep's base fields."""

    name: str
    model: str
    engine_args: Mapping[str, Any]
    """The sweep's fixed engine args; trials override some of them."""
    out_dir: Path
    search: SearchSpec

    @property
    def storage_url(self) -> str:
        return self.search.storage or default_storage_url(self.out_dir)

    @property
    def study_name(self) -> str:
        return self.search.study_name or f"{self.name}-search"


@dataclass
class SearchResult:
    """What a finished (or budget-exhausted) search found."""

    study: optuna.Study
    best: list[FrozenTrial]
    """Best feasible trial (single objective) or the Pareto front (pareto)."""
    baseline: FrozenTrial | None
    task: SearchTask
    files: dict[str, Path]


def _slo_mapping(slo: Any) -> Any:
    """The sweep spec's top-level slo (a mapping, or the orchestrator's SLOSpec object) as a mapping."""
    if slo is None or isinstance(slo, Mapping):
        return slo
    keys = ("ttft_ms", "tpot_ms", "e2el_ms", "attainment")
    return {k: getattr(slo, k) for k in keys if getattr(slo, k, None) is not None}


def task_from_sweep(sweep: Any, out_dir: str | Path | None = None) -> SearchTask:
    """Adapter: a sweep spec (raw mapping or orchestrator.spec.SweepSpec) -> SearchTask.

    Reads name, model, engine_args, slo, output and the raw `search` section.
    """
    get = sweep.get if isinstance(sweep, Mapping) else (lambda k, d=None: getattr(sweep, k, d))
    raw = get("search")
    if raw is None:
        raise SearchError("the sweep spec has no `search:` section")
    engine_args = dict(get("engine_args") or {})
    spec = parse_search_spec(raw, base_engine_args=engine_args, top_level_slo=_slo_mapping(get("slo")))
    if out_dir is None:
        out_dir = sweep.output_dir() if hasattr(sweep, "output_dir") else (get("output") or f"runs/{get('name')}")
    return SearchTask(
        name=str(get("name")), model=str(get("model")), engine_args=engine_args, out_dir=Path(out_dir), search=spec
    )


def run_search(
    spec: Any, args: Any = None, *, evaluator: Evaluator | None = None, log: Callable[[str], None] = print
) -> SearchResult:
    """Entry point for `llm-emu sweep` when the spec has a `search:` section.

    Args:
        spec: orchestrator.spec.SweepSpec, a raw sweep mapping, or a SearchTask.
        args: the CLI namespace (uses `args.output` when set).
        evaluator: runs trials; the orchestrator passes its Ray-backed one.
        log: where progress lines go.
    """
    task = spec if isinstance(spec, SearchTask) else task_from_sweep(spec, getattr(args, "output", None))
    if evaluator is None:
        raise SearchError("run_search needs an evaluator (the orchestrator passes its Ray-backed one)")
    result = run_study(task, evaluator, log=log)
    from search.report import write_report

    result.files.update(write_report(result, log=log))
    return result


def open_study(task: SearchTask, objective: Objective) -> tuple[optuna.Study, RDBStorage]:
    """Create or load the task's study (and return its RDB storage, which Optuna wraps in a cache)."""
    task.out_dir.mkdir(parents=True, exist_ok=True)
    storage = make_storage(task.storage_url, task.search)
    sampler = make_sampler(task.search)
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        study_name=task.study_name,
        directions=objective.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.metric_names))
    return study, storage


def _enqueue_baseline(study: optuna.Study, spec: SearchSpec) -> None:
    trials = study.get_trials(deepcopy=False)
    if spec.baseline and not any(t.user_attrs.get(BASELINE_ATTR) for t in trials):
        study.enqueue_trial({}, user_attrs={BASELINE_ATTR: True})


def _budget_left(study: optuna.Study, spec: SearchSpec) -> int:
    if spec.n_trials is None:
        return 1 << 30
    # RUNNING trials of a live concurrent controller will count too.
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return spec.n_trials - len(counted_trials(study)) - running


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


def ask_batch(
    study: optuna.Study, task: SearchTask, size: int, hb: Heartbeat, log: Callable[[str], None]
) -> tuple[list[PendingTrial], list[PendingTrial]]:
    """Ask up to `size` new configs: (to evaluate, infeasible). Duplicates are skipped, not counted."""
    spec, batch, infeasible = task.search, [], []
    seen, dupes = _tried_keys(study), 0
    while len(batch) + len(infeasible) < size and dupes < spec.max_duplicate_asks:
        if isinstance(study.sampler, AskTellGridSampler) and study.sampler.is_exhausted(study):
            break
        with quiet():
            trial = study.ask()
        p = _pending(trial, task)
        key = config_key(p.engine_args)
        if key in seen and not trial.user_attrs.get("config_key") == key:
            trial.set_user_attr(SKIPPED_ATTR, "duplicate config")
            study.tell(trial, state=TrialState.FAIL)
            dupes += 1
            continue
        seen.add(key)
        hb.add(trial._trial_id)
        for name, value in (("config_key", key), ("overrides", p.overrides), ("engine_args", p.engine_args)):
            trial.set_user_attr(name, value)
        broken = [] if trial.user_attrs.get(BASELINE_ATTR) else violated_constraints(spec, p.engine_args)
        if broken:
            trial.set_user_attr("infeasible", broken)
            infeasible.append(p)
        else:
            batch.append(p)
    if dupes >= spec.max_duplicate_asks:
        log(f"search: {dupes} proposals in a row were already-tried configs; treating the space as exhausted")
    return batch, infeasible


def _tell(study: optuna.Study, p: PendingTrial, r: TrialResult) -> None:
    for key, value in r.attrs.items():
        p.trial.set_user_attr(key, value)
    if r.constraints is not None:
        p.trial.set_user_attr(CONSTRAINTS_ATTR, list(r.constraints))
        for i, value in enumerate(r.constraints):
            # Optuna 5's constraint machinery: read by TPE/GP/NSGA-II and by study.best_trials.
            p.trial.set_constraint(_CONSTRAINT_NAMES[i] if i < len(_CONSTRAINT_NAMES) else str(i), value)
    study.tell(p.trial, list(r.values) if r.values is not None else None, state=r.state)


def run_study(task: SearchTask, evaluator: Evaluator, *, log: Callable[[str], None] = print) -> SearchResult:
    """Run (or resume) the study until n_trials count, timeout_s passes, or the space is exhausted."""
    spec = task.search
    objective = make_objective(spec)
    study, storage = open_study(task, objective)
    recover_stale(study, storage, spec, log)
    _enqueue_baseline(study, spec)
    started = time.monotonic()
    with Heartbeat(storage, spec.heartbeat_interval_s) as hb:
        while (left := _budget_left(study, spec)) > 0:
            if spec.timeout_s is not None and time.monotonic() - started > spec.timeout_s:
                log(f"search: timeout_s={spec.timeout_s} reached")
                break
            batch, infeasible = ask_batch(study, task, min(spec.parallelism, left), hb, log)
            for p in infeasible:
                study.tell(p.trial, state=TrialState.PRUNED)
                hb.remove(p.trial._trial_id)
            if not batch and not infeasible:
                break
            results = objective.run(batch, evaluator) if batch else []
            for p, r in zip(batch, results, strict=True):
                _tell(study, p, r)
                hb.remove(p.trial._trial_id)
            log(f"search: {len(counted_trials(study))}/{spec.n_trials or '-'} trials done")
    return SearchResult(study, best_trials(study, spec), baseline_trial(study), task, files={})


def feasible(t: FrozenTrial) -> bool:
    """All stored constraint values <= 0 (no constraints stored = feasible)."""
    return all(c <= 0 for c in t.user_attrs.get(CONSTRAINTS_ATTR, ()))


def _dominates(a: FrozenTrial, b: FrozenTrial, signs: list[float]) -> bool:
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a.values, b.values, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def best_trials(study: optuna.Study, spec: SearchSpec) -> list[FrozenTrial]:
    """Best feasible COMPLETE trial, or the feasible Pareto front (non-dominated, sorted by throughput)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if feasible(t)]
    if spec.objective != "pareto":
        return [max(done, key=lambda t: (t.value, -t.number))] if done else []
    signs = [1.0 if d == "maximize" else -1.0 for d in spec.directions]
    front = [t for t in done if not any(_dominates(o, t, signs) for o in done)]
    return sorted(front, key=lambda t: -t.values[0])


def baseline_trial(study: optuna.Study) -> FrozenTrial | None:
    """The last finished trial run with vLLM's defaults for the searched args."""
    base = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(BASELINE_ATTR) and t.state in (TrialState.COMPLETE, TrialState.FAIL)
    ]
    return base[-1] if base else None
