"""`llm-emu calibrate`: fit the aic-cal terms of one GPU on its reference rows, score them leave-one-source-out.

With ``--transfer-from GPU`` nothing is fitted: that GPU's terms are scored on this GPU's rows (all of them
held out). ``--write`` stores the result as ``llm_emu/data/calibration/<gpu>.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_json
from llm_emu.oracle.calibration import Calibration, CalibrationTerms, load_calibration, save_calibration
from llm_emu.reference.compare import FAMILIES, growth_table
from llm_emu.reference.fit import (
    BOUNDS,
    DEFAULT_FREE,
    HOST_PARAM,
    HOST_STEP_PARAM,
    HOST_STEP_REQ_PARAM,
    IDENTITY,
    Evaluator,
    Params,
    fit_terms,
    leave_one_source_out,
    score,
    split_params,
    summarize,
)
from llm_emu.reference.plan import ReplayOptions, ReplayPlan, plan_row
from llm_emu.reference.replay import CLOCKS, replay
from llm_emu.reference.rows import REFERENCE_CSV, ReferenceRow, load_reference


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu calibrate`."""
    parser.add_argument("--gpu", required=True,
                        help="aiconfigurator system(s) to calibrate, e.g. h100_sxm; a comma-separated list "
                             "(h100_sxm,h200_sxm) fits one set of terms on all their rows, written per GPU")
    parser.add_argument("--rows", nargs="+", default=None, metavar="ID",
                        help="rows or sources to use (default: every reference row of --gpu)")
    parser.add_argument("--free", default=",".join(DEFAULT_FREE),
                        help=f"terms to fit, comma-separated, of {sorted(BOUNDS)} (default %(default)s)")
    parser.add_argument("--fit-on", default=",".join(FAMILIES), metavar="FAMILIES",
                        help=f"metric families whose errors the fit minimises, comma-separated, of {list(FAMILIES)} "
                             "(default: all; every family is still scored)")
    parser.add_argument("--transfer-from", default=None, metavar="GPU",
                        help="fit nothing: score that GPU's shipped terms on these rows")
    parser.add_argument("--clock", choices=CLOCKS, default="virtual", help="replay clock (default %(default)s)")
    parser.add_argument("--max-prompts", type=int, default=400, help="cap requests per row (default %(default)s)")
    parser.add_argument("--prompts-per-slot", type=int, default=5,
                        help="closed-loop rows with fixed output lengths: at most this many requests per "
                             "concurrent slot (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="replay runners at a time (virtual time: same numbers; default %(default)s)")
    parser.add_argument("--max-iter", type=int, default=6, help="Levenberg-Marquardt iterations (default %(default)s)")
    parser.add_argument("--reference", default=str(REFERENCE_CSV), help="reference CSV (default: the shipped set)")
    parser.add_argument("--out", default=None, help="work directory, reused on a rerun (default runs/calibrate/<gpu>)")
    parser.add_argument("--loso-refit", action="store_true",
                        help="refit every leave-one-source-out fold (default: one Gauss-Newton step from the "
                             "all-rows fit with the fold's rows only)")
    parser.add_argument("--write", action="store_true", help="write llm_emu/data/calibration/<gpu>.json")


def _profile(terms: CalibrationTerms) -> str:
    return "aic-cal:{gpu}," + ",".join(f"{k}={v!r}" for k, v in asdict(terms).items())


def _params(cal: Calibration) -> Params:
    return {**asdict(cal.terms), HOST_PARAM: cal.host_request_ms, HOST_STEP_PARAM: cal.host_step_ms,
            HOST_STEP_REQ_PARAM: cal.host_step_per_req_ms}


def replay_evaluator(clock: str, out: Path, max_prompts: int | None, seed: int = 0,
                     prompts_per_slot: int | None = None, jobs: int = 1) -> Evaluator:
    """An Evaluator that replays rows with the given terms; finished rows are kept on disk and reused.

    A row's result is keyed by what its replay actually uses (profile, host time charged to it, workload, flags),
    so a change of a term that does not reach a row (the step host terms on an async-scheduling row) replays
    nothing, and an edited row is replayed again. Rows that share a server run in one runner; ``jobs`` runners
    at a time (virtual time: the numbers do not depend on it)."""

    def evaluate(params: Params, rows: Sequence[ReferenceRow]) -> dict[str, Mapping[str, Any]]:
        terms, host_ms = split_params(params)
        profile = _profile(terms)
        opts = ReplayOptions(profile=profile, max_prompts=max_prompts, seed=seed, host_ms=host_ms,
                             prompts_per_slot=prompts_per_slot)
        results: dict[str, Mapping[str, Any]] = {}
        cached: dict[str, Path] = {}
        groups: dict[str, list[ReplayPlan]] = {}
        for row in rows:
            plan = plan_row(row, opts)
            key = f"{plan.profile}|{plan.host_ms}|{plan.workload}|{plan.warmup}|{plan.vllm_args}|{clock}"
            done = out / "rows" / f"{row.row_id}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
            if done.is_file():
                results[row.row_id] = json.loads(done.read_text())["result"]
            else:
                cached[row.row_id] = done
                groups.setdefault(repr(plan.server_key), []).append(plan)

        def run(server: str, plans: list[ReplayPlan]) -> None:
            work = out / "work" / hashlib.sha256(server.encode()).hexdigest()[:12]
            for plan, result in replay(plans, clock, work):
                atomic_write_json(cached[plan.row.row_id], {"row_id": plan.row.row_id, "result": result})
                results[plan.row.row_id] = result

        # with several jobs, a server's rows are split in `jobs` parts so that one big group does not run alone;
        # the largest parts start first
        parts = [(f"{server}|{i}", plans[i::jobs]) for server, plans in sorted(groups.items())
                 for i in range(min(max(1, jobs), len(plans)))]
        parts.sort(key=lambda part: -len(part[1]))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(run, server, plans) for server, plans in parts]:
                future.result()
        print(f"  evaluated {profile.split(',', 1)[1]},host_ms={host_ms} on {len(rows)} rows "
              f"({len(cached)} replayed)", file=sys.stderr, flush=True)
        return {row.row_id: results[row.row_id] for row in rows}

    return evaluate


def _table(rows: Sequence[ReferenceRow], columns: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    fams = list(FAMILIES)
    head = "| row | source | " + " | ".join(f"{c} {f} %" for c in columns for f in fams) + " |"
    lines = [head, "|---|---|" + "---:|" * (len(columns) * len(fams))]
    for r in rows:
        cells = [f"{columns[c].get(r.row_id, {}).get(f, float('nan')):+.1f}" for c in columns for f in fams]
        lines.append(f"| {r.row_id} | {r.source_id} | " + " | ".join(c.replace("+nan", "") for c in cells) + " |")
    for c, errs in columns.items():
        s = summarize(errs)
        lines.append(f"| mean abs ({c}) | | " + " | ".join(
            f"{s[f]['mean_abs']:.1f}" if f in s else "" for f in fams) + " |")
    return "\n".join(lines)


def _fit_choices(args: argparse.Namespace) -> tuple[list[str], list[str], list[str] | None]:
    """(--free terms, --fit-on families, the families to pass to the fit: None for all), checked before any replay."""
    free = [f for f in args.free.split(",") if f]
    unknown = sorted(set(free) - set(BOUNDS))
    if unknown:
        raise EmuError(f"unknown term(s) {unknown} in --free; valid terms are {sorted(BOUNDS)}")
    fit_on = [f for f in args.fit_on.split(",") if f]
    if not fit_on or set(fit_on) - set(FAMILIES):
        raise EmuError(f"--fit-on {args.fit_on!r}: name metric families of {list(FAMILIES)}, e.g. --fit-on ITL,TPOT")
    return free, fit_on, None if set(fit_on) == set(FAMILIES) else fit_on


def _calibrate(args: argparse.Namespace, rows: list[ReferenceRow], evaluate: Evaluator) -> tuple[Calibration, str]:
    baseline = score(rows, evaluate, IDENTITY)
    cmd = "llm-emu " + " ".join(sys.argv[1:])
    date = _dt.date.today().isoformat()
    if args.transfer_from:
        src = load_calibration(args.transfer_from)
        held = score(rows, evaluate, _params(src))
        cal = Calibration(gpu=args.gpu, terms=src.terms, rows=src.rows, sources=src.sources,
                          host_request_ms=src.host_request_ms, host_step_ms=src.host_step_ms,
                          host_step_per_req_ms=src.host_step_per_req_ms,
                          held_out={"rows": [r.row_id for r in rows], "errors": held, "summary": summarize(held),
                                    "uncalibrated": summarize(baseline)},
                          transferred_from=args.transfer_from, fitted_at=date, command=cmd,
                          notes=f"terms of {args.transfer_from}; every {args.gpu} row is held out")
        return cal, _table(rows, {"aic": baseline, "transferred": held})
    free, fit_on, families = _fit_choices(args)
    full = fit_terms(rows, evaluate, free=free, max_iter=args.max_iter, families=families)
    fitted = score(rows, evaluate, full.params)
    loso = leave_one_source_out(rows, evaluate, full, refit=args.loso_refit)
    sources = sorted({r.source_id for r in rows})
    terms, host_ms = split_params(full.params)
    cal = Calibration(gpu=rows[0].gpu, terms=terms, rows=[r.row_id for r in rows], sources=sources,
                      gpus=sorted({r.gpu for r in rows}),
                      host_request_ms=round(host_ms[0], 4), host_step_ms=round(host_ms[1], 4),
                      host_step_per_req_ms=round(host_ms[2], 5),
                      held_out={"summary": loso.summary, "errors": loso.errors,
                                "folds": loso.folds,
                                "in_sample": summarize(fitted), "uncalibrated": summarize(baseline),
                                "in_sample_errors": fitted, "uncalibrated_errors": baseline},
                      fitted_at=date, command=cmd,
                      notes=f"{args.clock} clock, at most {args.max_prompts} prompts per row "
                            f"({args.prompts_per_slot} per slot in closed loops); free terms {free}; "
                            f"fitted on {'all metric families' if families is None else fit_on}; "
                            f"cost {full.start_cost:.4f} -> {full.cost:.4f} in {full.iterations} iterations")
    growth = (f"ITL growth with load, uncalibrated:\n\n{growth_table(rows, evaluate(IDENTITY, rows))}\n\n"
              f"ITL growth with load, calibrated (all-rows fit):\n\n{growth_table(rows, evaluate(full.params, rows))}")
    return cal, _table(rows, {"aic": baseline, "fit": fitted, "held-out": loso.errors}) + "\n\n" + growth


def main(args: argparse.Namespace) -> int:
    gpus = [g for g in args.gpu.split(",") if g]
    rows = [r for r in load_reference(args.reference, args.rows) if r.gpu in gpus]
    missing = sorted(set(gpus) - {r.gpu for r in rows})
    if missing:
        raise EmuError(f"no reference rows for {missing} among the selected rows; "
                       f"see llm_emu/data/reference/runs.csv")
    if args.transfer_from and len(gpus) > 1:
        raise EmuError("--transfer-from scores one GPU at a time; pass a single --gpu")
    _fit_choices(args)  # a bad --free/--fit-on fails here, not after the uncalibrated replay
    out = Path(args.out or f"runs/calibrate/{'+'.join(gpus)}")
    evaluate = replay_evaluator(args.clock, out, args.max_prompts, prompts_per_slot=args.prompts_per_slot,
                                jobs=args.jobs)
    cal, table = _calibrate(args, rows, evaluate)
    print(table)
    print(f"\nterms: {asdict(cal.terms)} host ms per request {cal.host_request_ms}, per step {cal.host_step_ms} "
          f"+ {cal.host_step_per_req_ms} per request in it (sync scheduling)")
    print(f"held out: {json.dumps(cal.held_out.get('summary'))}\n{cal.provenance}")
    for gpu in gpus:
        own = replace(cal, gpu=gpu, held_out=_own_rows(cal.held_out, {r.row_id for r in rows if r.gpu == gpu}))
        save_calibration(own, out / f"calibration-{gpu}.json")
        if args.write:
            print(f"wrote {save_calibration(own)}", file=sys.stderr)
    return 0


def _own_rows(held_out: dict[str, Any], own: set[str]) -> dict[str, Any]:
    """The held-out record of a joint fit as one GPU's file shows it: scores over that GPU's rows."""
    def mine(key: str) -> dict[str, Any]:
        return {k: v for k, v in held_out.get(key, {}).items() if k in own}

    errors, fitted, baseline = mine("errors"), mine("in_sample_errors"), mine("uncalibrated_errors")
    return {**held_out, "errors": errors, "summary": summarize(errors), "all_gpus_summary": held_out.get("summary"),
            "in_sample_errors": fitted, "in_sample": summarize(fitted),
            "uncalibrated_errors": baseline, "uncalibrated": summarize(baseline)}
