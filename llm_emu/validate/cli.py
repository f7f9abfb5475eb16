"""`llm-emu validate`: one workload on real vLLM and on the emulator, vLLM's own client; errors and noise floor.

Both servers are up for the whole validation; per (arrival pattern, rate) cell the runs go real, emulated,
real (``--no-aa``: real, emulated), ``--repeats`` times, all with the same ShareGPT (or random) requests and
seed. The two real runs of a cell give its noise floor (real vs real), against which the emulator's error is
judged. Outputs in ``--out``: ``results.parquet`` (one row per run: vLLM's metric keys, vLLM's request timing,
the run's time window), ``errors.parquet``, ``step_errors.parquet``, ``errors.md``, ``validation.png``, the
step traces of both sides, server logs and the client's JSON files. See ``llm_emu.validate.report``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from llm_emu.capture.cpuset import ServerPinning
from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_json, atomic_write_text
from llm_emu.validate.errors import KIND_EMU, KIND_REAL
from llm_emu.validate.plan import PlannedRun, describe, schedule
from llm_emu.validate.report import report

RETIME_HOST_HELP = ("replay's host model: 'trace' (default: fitted on this validation's own emulated runs, saved as "
                    "host-fit.json), 'default' (the shipped model), 'none' or a JSON file")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu validate`; every other flag goes to both `vllm serve` commands unchanged."""
    parser.add_argument("--profile", required=True, help="profile pack directory (made by `llm-emu profile`)")
    parser.add_argument("--model", default="tiny-llama", help="model (default %(default)s)")
    parser.add_argument("--rates", default="0.25,0.5,1,1.5,2,3", help="request rates, req/s (default %(default)s)")
    parser.add_argument("--burstiness", default="1,0.25",
                        help="gamma shapes of inter-arrival times, 1 = Poisson (default %(default)s)")
    parser.add_argument("--num-prompts", type=int, default=500, help="requests per run (default %(default)s)")
    parser.add_argument("--dataset", default="sharegpt", choices=("sharegpt", "random"))
    parser.add_argument("--seed", type=int, default=0, help="workload seed (same for real and emulated)")
    parser.add_argument("--emu-seed", type=int, default=0, help="seed of the emulator's latency draws")
    parser.add_argument("--out", required=True, help="output directory (a rerun resumes where it stopped)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="repeats per cell; >= 2 gives each error a 95 %% interval (default %(default)s)")
    parser.add_argument("--no-aa", action="store_true",
                        help="run the real side once per cell (no noise floor; a third fewer runs)")
    parser.add_argument("--capacity", type=float, default=None,
                        help="saturated request throughput of the real server (req/s), for the duration estimate")
    parser.add_argument("--no-step-trace", action="store_true",
                        help="no step traces (real: the capture's recording worker; emulated: --trace), so no "
                             "step-level report")
    parser.add_argument("--retime", action="store_true",
                        help="after the runs, replay the emulated side in virtual time with the pack retimed to the "
                             "device's speed measured in each cell (separates device drift from emulator error; "
                             "needs the step traces)")
    parser.add_argument("--retime-host", default="trace",
                        help="with --retime: the " + RETIME_HOST_HELP)
    ServerPinning.add_cli_args(parser)


def server_spec(kind: str, args: argparse.Namespace, pin: ServerPinning, out: Path) -> Any:
    """ServerSpec for one side; the real server gets the pack's engine settings as explicit flags too."""
    from llm_emu.profile.pack import load_pack
    from llm_emu.serve import engine_flags
    from llm_emu.server import ServerSpec, has_accelerator

    user = list(getattr(args, "vllm_args", []) or [])
    if kind == KIND_REAL:
        pack = load_pack(args.profile)
        cpu = not has_accelerator()
        flags = [*pin.real_server_args(cpu), *engine_flags(pack.meta.engine, user), *user]
        if _traced(args):
            from llm_emu.capture.cli import CPU_WORKER, CUDA_WORKER
            from llm_emu.capture.recorder import additional_config

            flags += ["--worker-cls", CPU_WORKER if cpu else CUDA_WORKER,
                      "--additional-config", additional_config(out / "real-steps")]
        return ServerSpec(kind="real", model=args.model, vllm_args=tuple(flags), log_path=out / "server-real.log",
                          env=pin.server_env())
    # `--seed` here is `llm-emu serve`'s own (latency draws, synthetic tokens), parsed before vLLM's flags.
    flags = [*user, "--seed", str(args.emu_seed)]
    if _traced(args):
        flags += ["--trace", str(out / "emulated-steps.jsonl")]
    return ServerSpec(kind="emulated", model=args.model, profile=str(Path(args.profile).resolve()),
                      vllm_args=tuple(flags), log_path=out / "server-emulated.log", env=pin.server_env())


def _traced(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_step_trace", False)


def targets(args: argparse.Namespace, pin: ServerPinning, out: Path) -> dict[str, Any]:
    """MeasureTarget per side (the prefix cache is emptied before every run)."""
    from llm_emu.measure import MeasureTarget

    return {kind: MeasureTarget(server=server_spec(kind, args, pin, out), tokenizer_model=args.model, pinning=pin)
            for kind in (KIND_REAL, KIND_EMU)}


def bench_run(args: argparse.Namespace, out: Path) -> Any:
    """PlannedRun -> BenchRun with the validation's workload."""
    from llm_emu.benchclient import Workload
    from llm_emu.measure import BenchRun

    def make(r: PlannedRun) -> BenchRun:
        wl = Workload(dataset=args.dataset, num_prompts=args.num_prompts, request_rate=r.rate,
                      burstiness=r.burstiness, seed=args.seed)
        return BenchRun(wl, result_dir=out / "bench" / r.kind, label=r.label)

    return make


def _check(args: argparse.Namespace) -> list[tuple[float, float]]:
    if not Path(args.profile).is_dir():
        raise EmuError(f"--profile {args.profile!r} is not a pack directory; capture one with `llm-emu profile`")
    user = list(getattr(args, "vllm_args", []) or [])
    if any(a.split("=", 1)[0] in ("--worker-cls", "--additional-config") for a in user):
        raise EmuError("--worker-cls/--additional-config are set by llm-emu; remove them")
    cells = [(b, r) for b in _floats(args.burstiness) for r in _floats(args.rates)]
    if not cells:
        raise EmuError("no cells: give --rates and --burstiness")
    if args.repeats < 1:
        raise EmuError(f"--repeats {args.repeats} must be >= 1")
    if getattr(args, "retime", False) and getattr(args, "no_step_trace", False):
        raise EmuError("--retime measures the device's speed from the step traces; drop --no-step-trace")
    return cells


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(args: argparse.Namespace) -> int:
    from llm_emu.server import has_accelerator
    from llm_emu.validate.runner import pending, run_plan

    cells = _check(args)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pin = ServerPinning.from_args(args, not has_accelerator())
    plan = schedule(cells, args.repeats, aa=not getattr(args, "no_aa", False))
    todo = pending(plan, out)
    print(f"llm-emu validate: {describe(todo, args.num_prompts, getattr(args, 'capacity', None))}"
          f"{' (resumed: ' + str(len(plan) - len(todo)) + ' runs done)' if len(todo) < len(plan) else ''}",
          file=sys.stderr, flush=True)
    t0 = time.monotonic()
    recorded = out / "validate.json"
    meta: dict[str, Any] = json.loads(recorded.read_text()) if recorded.is_file() else {}
    if todo or "seconds" not in meta:
        meta = {"argv": sys.argv, "pinning": pin.describe(), "load_before": _load()}
        atomic_write_json(recorded, meta)
        if todo:
            run_plan(todo, targets(args, pin, out), bench_run(args, out), out)
        meta |= {"load_after": _load(), "seconds": round(time.monotonic() - t0, 1)}
        atomic_write_json(recorded, meta)
    # else nothing was left to run: the report is rebuilt and the record of the call that ran keeps its load and time
    cmd = "llm-emu validate " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    load = (f"Load average (1/5/15 min) before {'/'.join(map(str, meta['load_before']))}, after "
            f"{'/'.join(map(str, meta['load_after']))}; {meta['seconds'] / 60:.0f} min.\n")
    text = report(out, f"llm-emu validate: {args.model}, {args.dataset}, {args.num_prompts} prompts/run", cmd,
                  profile=args.profile, preamble=load)
    if getattr(args, "retime", False):
        from llm_emu.validate.retime import host_for, saved_replay, section

        saved = not todo and saved_replay(out)
        print("llm-emu validate: --retime: " + ("the saved replay (nothing was run)" if saved else
              "replaying the emulated side in virtual time"), file=sys.stderr, flush=True)
        extra = section(out, Path(args.profile), args.model, host_for(out, args.retime_host, saved), saved=saved)
        text += "\n" + extra
        atomic_write_text(out / "errors.md", (out / "errors.md").read_text() + "\n" + extra)
    print(text)
    print(f"llm-emu validate: done in {time.monotonic() - t0:.0f} s; results in {out}", file=sys.stderr)
    return 0
