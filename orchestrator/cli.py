"""`llm-emu sweep SPEC` and `llm-emu report OUT_DIR`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from llm_emu.errors import SpecError
from orchestrator.executor import WALL_TRIAL_MIN_CPUS
from orchestrator.spec import SweepSpec, load_spec


def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu sweep` (each means the same for a grid and for a search)."""
    parser.add_argument("spec", help="sweep spec (YAML) with a grid or a search, see docs/SWEEPS.md")
    parser.add_argument("-o", "--output",
                        help="output directory (default: the spec's output, else runs/NAME)")
    parser.add_argument("--address", help="join an existing Ray cluster (e.g. auto, or HOST:6379) instead "
                                          "of starting a local one")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="skip trials that already have results in the output dir, and continue a search's "
                             "study (default: on; --no-resume re-runs everything and starts a new study)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="with --resume, run failed trials (and a search's failed configs) again")
    parser.add_argument("--dry-run", action="store_true", help="check the spec, list trials (or the search's "
                                                                "space and budget), pruned configs and an "
                                                                "estimated wall time; start and write nothing")
    parser.add_argument("--clock", choices=("wall", "virtual"), help="override the spec's clock")
    parser.add_argument("--host-model", help="override the spec's host_model (virtual time): default, none or a "
                                             "JSON file")
    parser.add_argument("--max-parallel", type=int, help="override resources.max_parallel")
    parser.add_argument("--num-cpus", type=int, help="override resources.num_cpus (local cluster size)")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_report_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu report`."""
    parser.add_argument("out_dir", help="a sweep's output directory (holding results.parquet)")


def apply_overrides(spec: SweepSpec, args: argparse.Namespace) -> SweepSpec:
    """The spec with the CLI's --clock / --host-model applied (and re-checked like the spec's own keys)."""
    clock = getattr(args, "clock", None)
    host = getattr(args, "host_model", None)
    if clock is not None:
        if clock == "virtual" and spec.kind == "real":
            raise SpecError("--clock virtual: virtual time emulates a profile; kind: real runs in wall-clock time only")
        if clock == "wall" and spec.clock == "virtual" and spec.resources.cpus_per_trial < WALL_TRIAL_MIN_CPUS:
            print(f"llm-emu sweep: warning: --clock wall with resources.cpus_per_trial "
                  f"{spec.resources.cpus_per_trial:g} (sized for virtual time): wall-clock servers on shared cores "
                  f"measure distorted latencies; set cpus_per_trial: 2 or --max-parallel 1", file=sys.stderr)
        spec = replace(spec, clock=clock)
    return replace(spec, host_model=host) if host is not None else spec


def sweep_main(args: argparse.Namespace) -> int:
    """Entry point of `llm-emu sweep`: load and check the spec (exit 2 on any problem), then run the pipeline."""
    from orchestrator.checks import check_spec
    from orchestrator.pipeline import SweepOptions, run_sweep

    spec = apply_overrides(load_spec(args.spec), args)
    check_spec(spec)
    return run_sweep(spec, SweepOptions.from_args(args))


def report_main(args: argparse.Namespace) -> int:
    """Entry point of `llm-emu report OUT_DIR`."""
    from orchestrator.report import write_report

    out = Path(args.out_dir)
    if not (out / "results.parquet").is_file():
        raise SpecError(f"{out} has no results.parquet; run `llm-emu sweep SPEC -o {out}` first")
    print(f"report: {write_report(out)}")
    return 0
