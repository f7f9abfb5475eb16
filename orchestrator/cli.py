"""`llm-emu sweep SPEC` and `llm-emu report OUT_DIR`."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.errors import SpecError
from llm_emu.fsutil import atomic_write_json
from orchestrator.actors import ActorResources
from orchestrator.results import ResultStore
from orchestrator.runner import ServerRunner, TrialResult, TrialRunner
from orchestrator.spec import SweepSpec, load_spec
from orchestrator.summary import estimate_trial_s, plan_text, summary_text
from orchestrator.trials import PrunedTrial, Trial, expand


def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu sweep`."""
    parser.add_argument("spec", help="sweep spec (YAML), see docs/SWEEPS.md")
    parser.add_argument("-o", "--output",
                        help="output directory (default: the spec's output, else runs/NAME)")
    parser.add_argument("--address", help="join an existing Ray cluster (e.g. auto, or HOST:6379) instead "
                                          "of starting a local one")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="skip trials that already have results in the output dir (default: on)")
    parser.add_argument("--retry-failed", action="store_true", help="with --resume, re-run failed trials")
    parser.add_argument("--dry-run", action="store_true", help="list trials, pruned configs and an "
                                                                "estimated wall time; run nothing")
    parser.add_argument("--max-parallel", type=int, help="override resources.max_parallel")
    parser.add_argument("--num-cpus", type=int, help="override resources.num_cpus (local cluster size)")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_report_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu report`."""
    parser.add_argument("out_dir", help="a sweep's output directory (holding results.parquet)")


def check_engine_args(spec: SweepSpec) -> None:
    """Reject engine arg names vLLM does not know (a typo would otherwise fail every trial at startup)."""
    try:
        import dataclasses

        from vllm.engine.arg_utils import EngineArgs
    except Exception:  # no vLLM on the controller machine: the servers will check
        return
    valid = {f.name for f in dataclasses.fields(EngineArgs)}
    for section in ("engine_args", "grid"):
        for name in getattr(spec, section):
            if name not in valid:
                close = difflib.get_close_matches(name, sorted(valid), n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                raise SpecError(f"{spec.where(section, name)}: {section}.{name}: not a vLLM engine arg{hint}")


def _options(spec: SweepSpec, args: argparse.Namespace, out: Path) -> Any:
    from orchestrator.controller import ControllerOptions

    r = spec.resources
    mem = int(r.memory_gb_per_trial * 2**30) if r.memory_gb_per_trial else None
    return ControllerOptions(
        out_dir=str(out.resolve()),
        resources=ActorResources(r.cpus_per_trial, mem, r.hardware_resource if spec.kind == "real" else None),
        max_parallel=args.max_parallel or r.max_parallel, retries=spec.retries,
        trial_timeout_s=r.trial_timeout_s,
    )


def _local_parallel(spec: SweepSpec, args: argparse.Namespace) -> int:
    cpus = args.num_cpus or spec.resources.num_cpus or os.cpu_count() or 1
    fit = max(1, math.floor(cpus / spec.resources.cpus_per_trial))
    return min(fit, args.max_parallel or spec.resources.max_parallel or fit)


def _write_manifest(spec: SweepSpec, args: argparse.Namespace, out: Path, trials: list[Trial],
                    pruned: list[PrunedTrial]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    spec_copy = out / "spec.yaml"
    if Path(args.spec).resolve() != spec_copy.resolve():
        shutil.copyfile(args.spec, spec_copy)
    atomic_write_json(out / "sweep.json", {
        "name": spec.name, "spec": str(Path(args.spec).resolve()),
        "trials": [{"hash": t.hash, "config": t.label, "engine_args": t.engine, "vllm_flags": t.vllm_flags()}
                   for t in trials],
        "pruned": [{"config": p.label, "reason": p.reason} for p in pruned],
        "workload": asdict(spec.workload), "slo": asdict(spec.slo) if spec.slo else None,
    })


def _trial_seconds(spec: SweepSpec, store: ResultStore, trials: list[Trial]) -> float:
    """Median wall time of this sweep's finished trials (measured beats guessed), else the rough estimate."""
    hashes = {t.hash for t in trials}
    done = [df for h in hashes if (df := store.read_trial(h)) is not None and (df["status"] == "ok").all()]
    if not done:
        return estimate_trial_s(spec)
    return float(pd.concat(done).drop_duplicates("trial_hash")["trial_elapsed_s"].median())


def run_sweep(spec: SweepSpec, args: argparse.Namespace, runner: TrialRunner | None = None) -> int:
    """Run (or plan) a sweep; the testable core of ``sweep_main`` with an injectable trial runner."""
    out = Path(args.output or spec.output_dir())
    if args.output:
        spec = replace(spec, output=str(out))
    trials, pruned = expand(spec)
    store = ResultStore(out)
    done = {t.hash for t in trials if args.resume and store.is_done(t.hash, args.retry_failed)}
    parallel = _local_parallel(spec, args)
    if args.dry_run:
        print(plan_text(spec, trials, pruned, done, parallel, _trial_seconds(spec, store, trials)))
        return 0
    _write_manifest(spec, args, out, trials, pruned)
    store.combine(trials)  # a killed run may have finished trials the combined file missed
    todo = [t for t in trials if t.hash not in done]
    if done:
        print(f"resuming {out}: {len(done)} trials done, {len(todo)} to run", file=sys.stderr)
    results = _execute(spec, args, out, store, todo, runner or ServerRunner()) if todo else []
    df = store.combine(trials)
    print(summary_text(df, len(pruned)))
    if not args.no_report and not df.empty:
        from orchestrator.report import write_report

        print(f"report: {write_report(out)}")
    return 1 if any(r.status != "ok" for r in results) else 0


def _execute(spec: SweepSpec, args: argparse.Namespace, out: Path, store: ResultStore,
             todo: list[Trial], runner: TrialRunner) -> list[TrialResult]:
    from tqdm import tqdm

    from orchestrator.controller import Controller, connect

    opts = _options(spec, args, out)
    started = connect(args.address, args.num_cpus or spec.resources.num_cpus)
    bar = tqdm(total=len(todo), unit="trial", desc=spec.name, disable=args.no_progress, file=sys.stderr)
    failed = 0

    def on_result(trial: Trial, result: TrialResult) -> None:
        nonlocal failed
        failed += result.status != "ok"
        bar.set_postfix_str(f"failed={failed}" if failed else trial.label[:40])
        bar.update(1)

    try:
        return Controller(runner, store, opts, on_result).run(todo)
    finally:
        bar.close()
        if started:
            import ray

            ray.shutdown()


def sweep_main(args: argparse.Namespace) -> int:
    """Entry point of `llm-emu sweep`: a grid sweep, or a search when the spec has a ``search:`` section."""
    spec = load_spec(args.spec)
    check_engine_args(spec)
    if spec.search is not None:
        return run_search_on_ray(spec, args)
    return run_sweep(spec, args)


def run_search_on_ray(spec: SweepSpec, args: argparse.Namespace, runner: TrialRunner | None = None) -> int:
    """Hand a spec with a ``search:`` section to the search package, with Ray actors as its evaluator."""
    from orchestrator.controller import connect
    from orchestrator.evaluator import RayEvaluator
    from search.runner import run_search  # search/ decides what to try; we decide where it runs

    out = Path(args.output or spec.output_dir())
    started = connect(args.address, args.num_cpus or spec.resources.num_cpus)
    try:
        run_search(spec, args, evaluator=RayEvaluator(spec, out, _options(spec, args, out), runner))
    finally:
        if started:
            import ray

            ray.shutdown()
    return 0


def report_main(args: argparse.Namespace) -> int:
    """Entry point of `llm-emu report OUT_DIR`."""
    from orchestrator.report import write_report

    out = Path(args.out_dir)
    if not (out / "results.parquet").is_file():
        raise SpecError(f"{out} has no results.parquet; run `llm-emu sweep SPEC -o {out}` first")
    print(f"report: {write_report(out)}")
    return 0
