"""One pipeline for every spec: plan -> prune -> execute -> report (Ray Tune's Tuner shape).

The proposal source is the only difference between a grid sweep and a search: ``search.GridSource`` (every
grid point at once) or ``search.OptunaSource`` (ask/tell in batches). Both are driven against the same
``TrialExecutor`` (pruning, resume, Ray actors, retries, results), so every flag means the same in both modes.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.executor import ExecutionOptions, TrialExecutor
from orchestrator.results import ResultStore
from orchestrator.runner import TrialResult, TrialRunner
from orchestrator.spec import SweepSpec
from orchestrator.summary import estimate_trial_s, plan_text, summary_text
from orchestrator.trials import Trial, expand, grid_source
from search import GridSource, OptunaSource, drive, task_from_sweep


@dataclass(frozen=True)
class SweepOptions:
    """The `llm-emu sweep` flags; each means the same for a grid and for a search."""

    output: str | None = None
    """Output directory (default: the spec's output, else runs/<name>)."""
    address: str | None = None
    """Join this Ray cluster instead of starting a local one."""
    resume: bool = True
    """Reuse finished trials (and a search's study) in the output directory."""
    retry_failed: bool = False
    """With resume, run failed trials (and a search's failed configs) again."""
    dry_run: bool = False
    """Print the plan; start and write nothing."""
    max_parallel: int | None = None
    """Overrides resources.max_parallel."""
    num_cpus: int | None = None
    """Overrides resources.num_cpus (local cluster size)."""
    report: bool = True
    """Write the report (plots, report.md/html, search.md) at the end."""
    progress: bool = True
    """Show a progress bar on stderr."""

    @classmethod
    def from_args(cls, args: Any) -> SweepOptions:
        """From parsed `llm-emu sweep` arguments."""
        return cls(output=args.output, address=args.address, resume=args.resume, retry_failed=args.retry_failed,
                   dry_run=args.dry_run, max_parallel=args.max_parallel, num_cpus=args.num_cpus,
                   report=not args.no_report, progress=not args.no_progress)


def make_source(spec: SweepSpec, out: Path, opts: SweepOptions,
                log: Callable[[str], None] = print) -> GridSource | OptunaSource:
    """The spec's proposal source: its search (Optuna), else its grid."""
    if spec.search is None:
        return grid_source(spec)
    return OptunaSource(task_from_sweep(spec, out), resume=opts.resume, retry_failed=opts.retry_failed, log=log)


def _parallel(spec: SweepSpec, opts: SweepOptions) -> int:
    cpus = opts.num_cpus or spec.resources.num_cpus or os.cpu_count() or 1
    fit = max(1, math.floor(cpus / spec.resources.cpus_per_trial))
    return min(fit, opts.max_parallel or spec.resources.max_parallel or fit)


def _trial_seconds(spec: SweepSpec, store: ResultStore, trials: list[Trial]) -> float:
    """Median wall time of this sweep's finished trials (measured beats guessed), else the rough estimate."""
    done = [df for t in trials if (df := store.read_trial(t.hash)) is not None and (df["status"] == "ok").all()]
    if done:
        return float(pd.concat(done).drop_duplicates("trial_hash")["trial_elapsed_s"].median())
    if spec.search is not None and spec.search.objective != "capacity":
        return estimate_trial_s(spec, [spec.search.rate or 1.0])
    if spec.search is not None:  # a bisection: both bounds, then about five midpoints
        return estimate_trial_s(spec, [spec.search.capacity.high if spec.search.capacity else 1.0] * 7)
    return estimate_trial_s(spec)


def plan(spec: SweepSpec, out: Path, opts: SweepOptions, source: GridSource | OptunaSource) -> str:
    """The dry-run plan: the source, the trials known in advance, what is done, pruned, and a time estimate."""
    store = ResultStore(out)
    trials, pruned = expand(spec) if spec.search is None else ([], [])
    done = {t.hash for t in trials if opts.resume and store.is_done(t.hash, opts.retry_failed)}
    budget = None
    if spec.search is not None:
        budget = spec.search.n_trials or 0
    return plan_text(spec, source.describe(), trials, pruned, done, _parallel(spec, opts),
                     _trial_seconds(spec, store, trials), budget)


def run_sweep(spec: SweepSpec, opts: SweepOptions, runner: TrialRunner | None = None,
              log: Callable[[str], None] = print) -> int:
    """Plan, prune, execute and report a spec; 0 only when every trial succeeded (pruned ones do not count).

    Args:
        spec: the loaded (and checked) spec.
        opts: the CLI flags.
        runner: runs one trial attempt (None: ServerRunner, a real server or virtual-time engine per trial).
        log: where the summary and progress lines go.
    """
    out = Path(opts.output or spec.output_dir())
    spec = replace(spec, output=str(out)) if opts.output else spec
    source = make_source(spec, out, opts, log)
    if opts.dry_run:
        log(plan(spec, out, opts, source))
        return 0
    _prepare(spec, out)
    with _ray(spec, opts) as connect, _progress(spec, opts) as on_result:
        executor = TrialExecutor(spec, out, ExecutionOptions(opts.resume, opts.retry_failed, opts.max_parallel),
                                 runner, on_result, connect=connect)
        if isinstance(source, OptunaSource) and opts.resume:
            executor.keep_earlier()
        result = None
        with executor, (source if isinstance(source, OptunaSource) else contextlib.nullcontext()):
            drive(source, executor)
            if isinstance(source, OptunaSource):
                if checks := source.verify_requests():
                    for request, outcome in zip(checks, executor.evaluate(checks), strict=True):
                        source.tell(request, outcome)
                result = source.result()
    return _finish(out, opts, executor, result, log)


def _prepare(spec: SweepSpec, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    src = spec.source_path
    if src is not None and Path(src).resolve() != (out / "spec.yaml").resolve():
        shutil.copyfile(src, out / "spec.yaml")


def _finish(out: Path, opts: SweepOptions, executor: TrialExecutor, result: Any, log: Callable[[str], None]) -> int:
    df = executor.store.combine(executor.hashes)
    log(summary_text(df, executor.n_pruned))
    if result is not None:
        from search.report import write_report as write_search_report

        write_search_report(result, log=log, report=opts.report)
    if opts.report and not df.empty:
        from orchestrator.report import write_report

        log(f"report: {write_report(out)}")
    failed = not df.empty and bool((df["status"] != "ok").any())
    return 1 if failed else 0


@contextlib.contextmanager
def _ray(spec: SweepSpec, opts: SweepOptions) -> Iterator[Callable[[], None]]:
    """A function that connects to Ray the first time a trial must run; shut down at the end if we started it."""
    started: list[bool] = []

    def connect() -> None:
        from orchestrator.controller import connect as ray_connect

        if not started:
            started.append(ray_connect(opts.address, opts.num_cpus or spec.resources.num_cpus))

    try:
        yield connect
    finally:
        if any(started):
            import ray

            ray.shutdown()


@contextlib.contextmanager
def _progress(spec: SweepSpec, opts: SweepOptions) -> Iterator[Callable[[Trial, TrialResult], None]]:
    from tqdm import tqdm

    total = None
    if spec.search is None:
        total = len(expand(spec)[0])
    elif spec.search.n_trials:
        total = spec.search.n_trials
    bar = tqdm(total=total, unit="trial", desc=spec.name, disable=not opts.progress, file=sys.stderr)
    failed = 0

    def on_result(trial: Trial, result: TrialResult) -> None:
        nonlocal failed
        failed += result.status != "ok"
        bar.set_postfix_str(f"failed={failed}" if failed else trial.label[:40])
        bar.update(1)

    try:
        yield on_result
    finally:
        bar.close()


__all__ = ["SweepOptions", "make_source", "plan", "run_sweep"]
