"""`llm-emu reference`: replay published real-GPU runs through the emulator and print the signed error table."""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_emu.fsutil import atomic_write_text
from llm_emu.reference.compare import (
    FAMILIES,
    error_table,
    growth_table,
    metric_table,
    row_family_errors,
    signed_errors,
)
from llm_emu.reference.plan import DEFAULT_PROFILE, ReplayOptions, ReplayPlan, plan_row
from llm_emu.reference.replay import CLOCKS, replay
from llm_emu.reference.rows import REFERENCE_CSV, ReferenceRow, load_reference


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu reference`."""
    parser.add_argument("--rows", nargs="+", default=None, metavar="ID",
                        help="row ids, source ids or GPUs to replay (default: every row)")
    parser.add_argument("--clock", choices=CLOCKS, default="virtual",
                        help="virtual: deterministic, independent of machine load (default); wall: real time")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help="profile template, {gpu} = the row's GPU (default %(default)s, aic:{gpu} where the "
                             "GPU has no calibration; aic:{gpu} = uncalibrated)")
    parser.add_argument("--max-prompts", type=int, default=None,
                        help="cap requests per row (long constant-rate stages; listed as a deviation)")
    parser.add_argument("--prompts-per-slot", type=int, default=None,
                        help="closed-loop rows with fixed output lengths: at most this many requests per slot")
    parser.add_argument("--host-ms", type=float, nargs=3, default=None, metavar=("REQUEST", "STEP", "STEP_PER_REQ"),
                        help="virtual clock: host ms per request, per engine step and per request in a step (the "
                             "step parts only where the row's server scheduled synchronously; default: the GPU's "
                             "calibration for aic-cal profiles, else 0 0 0)")
    parser.add_argument("--host-model", default=None, metavar="JSON",
                        help="virtual clock: a full host-time model (llm_emu.virtual.HostModel JSON), instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the client's sampling and the emulator")
    parser.add_argument("--reference", default=str(REFERENCE_CSV), help="reference CSV (default: the shipped set)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/reference/<timestamp>)")
    parser.add_argument("--list", action="store_true", help="list the rows and their replay deviations; run nothing")


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def load_host(path: str | None) -> Any:
    """The virtual clock's host model from a JSON file (None: pure device time)."""
    if path in (None, "none"):
        return None
    from llm_emu.virtual.host import HostModel

    return HostModel.load(path)


def _list(plans: Sequence[ReplayPlan]) -> None:
    for p in plans:
        print(f"{p.row.row_id}  [{p.row.source_id}, {p.row.gpu}]  profile {p.profile}  "
              f"{p.workload.num_prompts} prompts")
        for d in p.deviations:
            print(f"    - {d}")


def _errors_csv(rows: Sequence[ReferenceRow], errors: dict[str, dict[str, float]]) -> str:
    fams = list(FAMILIES)
    lines = [",".join(["row_id", "source_id", "gpu", *fams])]
    for r in rows:
        fe = row_family_errors(errors.get(r.row_id, {}))
        lines.append(",".join([r.row_id, r.source_id, r.gpu, *(f"{fe[f]:.3f}" if f in fe else "" for f in fams)]))
    return "\n".join(lines) + "\n"


def report(rows: Sequence[ReferenceRow], plans: Sequence[ReplayPlan], results: dict[str, dict[str, Any]],
           header: str) -> str:
    """The markdown report: header, error table per family, deviations, every metric."""
    errors = {r.row_id: signed_errors(r, results[r.row_id]) for r in rows if r.row_id in results}
    done = [r for r in rows if r.row_id in results]
    dev = "\n".join(f"- {p.row.row_id}: " + "; ".join(p.deviations) for p in plans if p.row.row_id in results)
    return (f"{header}\n\nSigned % error, emulated vs published (family = the first published of its metrics):\n\n"
            f"{error_table(done, errors)}\n\nITL growth with load (rows that differ only in load):\n\n"
            f"{growth_table(done, results)}\n\nDeviations of the replay from the published runs:\n\n{dev}\n\n"
            f"Every published metric:\n\n{metric_table(done, results)}\n")


def main(args: argparse.Namespace) -> int:
    rows = load_reference(args.reference, args.rows)
    opts = ReplayOptions(profile=args.profile, max_prompts=args.max_prompts, seed=args.seed,
                         host_ms=tuple(args.host_ms) if args.host_ms else None,
                         prompts_per_slot=args.prompts_per_slot)
    plans = [plan_row(r, opts) for r in rows]
    if args.list:
        _list(plans)
        return 0
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/reference/{stamp}")
    results: dict[str, dict[str, Any]] = {}
    for plan, result in replay(plans, args.clock, out, host=load_host(args.host_model)):
        results[plan.row.row_id] = result
        fe = row_family_errors(signed_errors(plan.row, result))
        print(f"{plan.row.row_id}: " + "  ".join(f"{k} {v:+.1f}%" for k, v in fe.items()), file=sys.stderr, flush=True)
    cmd = "llm-emu reference " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["reference"] else sys.argv[1:])
    header = (f"# llm-emu reference ({args.clock} clock, profile {args.profile})\n\n"
              f"{_dt.date.today().isoformat()}; `{cmd.strip()}`")
    text = report(rows, plans, results, header)
    _write_atomic(out / "report.md", text)
    _write_atomic(out / "errors.csv", _errors_csv(rows, {r.row_id: signed_errors(r, results[r.row_id])
                                                        for r in rows if r.row_id in results}))
    print(text.split("Every published metric:")[0])
    print(f"report: {out / 'report.md'}", file=sys.stderr)
    return 0


def read_errors_csv(path: Path) -> list[dict[str, str]]:
    """Rows of an errors.csv written by `llm-emu reference` (for docs and tests)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
