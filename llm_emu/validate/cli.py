"""`llm-emu validate`: one workload, real vLLM server then emulated server (never both at once), vLLM's client.

Per (arrival pattern, rate) cell both servers get the same ShareGPT (or random) requests with the same seed.
Outputs in ``--out``: ``results.parquet`` (one row per run, vLLM's metric keys), ``errors.parquet`` (long
table), ``errors.md`` (Table-1-shaped signed % errors + raw values), ``validation.png``, server logs and the
client's JSON files.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.capture.cpuset import ServerPinning
from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_json, atomic_write_parquet, atomic_write_text
from llm_emu.validate.errors import KIND_EMU, KIND_REAL, error_frame, error_table, markdown_table, values_table

#: Scalar vLLM result keys kept in results.parquet (per-request lists stay in the client's JSON files).
LIST_KEYS = ("ttfts", "itls", "input_lens", "output_lens", "start_times", "errors", "generated_texts")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu validate`; every other flag goes to both `vllm serve` commands unchanged."""
    parser.add_argument("--profile", required=True, help="profile pack directory (made by `llm-emu profile`)")
    parser.add_argument("--model", default="tiny-llama", help="model (default %(default)s)")
    parser.add_argument("--rates", default="2,4,6,8,10,12", help="request rates, req/s (default %(default)s)")
    parser.add_argument("--burstiness", default="1,0.25",
                        help="gamma shapes of inter-arrival times, 1 = Poisson (default %(default)s)")
    parser.add_argument("--num-prompts", type=int, default=500, help="requests per cell (default %(default)s)")
    parser.add_argument("--dataset", default="sharegpt", choices=("sharegpt", "random"))
    parser.add_argument("--seed", type=int, default=0, help="workload seed (same for real and emulated)")
    parser.add_argument("--emu-seed", type=int, default=0, help="seed of the emulator's latency draws")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--only", choices=("real", "emulated"), default=None,
                        help="run one side only (results are appended; rerun the other side later)")
    parser.add_argument("--cells-per-start", type=int, default=0,
                        help="alternate sides every K cells (restarting the servers) so real and emulated runs of a "
                             "cell are close in time on a shared machine; 0 = all cells per side (default)")
    parser.add_argument("--emu-trace", action="store_true",
                        help="emulated side: write one JSON line per engine step to OUT/emulated-steps.jsonl "
                             "(diagnostics; adds a little work per step)")
    parser.add_argument("--real-trace", action="store_true",
                        help="real side: run the capture's recording worker, steps to OUT/real-steps/ "
                             "(diagnostics; adds a little work per step)")
    ServerPinning.add_cli_args(parser)


def _scalar(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in LIST_KEYS and not isinstance(v, (list, dict))}


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
        if getattr(args, "real_trace", False):
            from llm_emu.capture.cli import CPU_WORKER, CUDA_WORKER
            from llm_emu.capture.recorder import additional_config

            flags += ["--worker-cls", CPU_WORKER if cpu else CUDA_WORKER,
                      "--additional-config", additional_config(out / "real-steps")]
        return ServerSpec(kind="real", model=args.model, vllm_args=tuple(flags), log_path=out / "server-real.log",
                          env=pin.server_env())
    # `--seed` here is `llm-emu serve`'s own (latency draws, synthetic tokens), parsed before vLLM's flags.
    flags = [*user, "--seed", str(args.emu_seed)]
    if getattr(args, "emu_trace", False):
        flags += ["--trace", str(out / "emulated-steps.jsonl")]
    return ServerSpec(kind="emulated", model=args.model, profile=str(Path(args.profile).resolve()),
                      vllm_args=tuple(flags), log_path=out / "server-emulated.log", env=pin.server_env())


def run_side(kind: str, args: argparse.Namespace, pin: ServerPinning, out: Path,
             cells: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """Start one server, run every cell, stop it; one result row per cell, appended to results.parquet at once."""
    from llm_emu.benchclient import Workload
    from llm_emu.measure import BenchRun, Measurement, MeasureTarget, measure_loop

    spec = server_spec(kind, args, pin, out)
    runs = [BenchRun(Workload(dataset=args.dataset, num_prompts=args.num_prompts, request_rate=rate,
                              burstiness=burst, seed=args.seed),
                     result_dir=out / "bench" / kind, label=f"rate={rate:g} burstiness={burst:g}")
            for burst, rate in cells]
    rows: list[dict[str, Any]] = []

    def persist(m: Measurement) -> None:
        wl = m.run.workload
        row = {"kind": kind, "rate": wl.request_rate, "burstiness": wl.burstiness, "wall_s": m.wall_s,
               "startup_s": m.startup_s, **_scalar(m.result)}
        rows.append(row)
        _append(out / "results.parquet", row)

    print(f"llm-emu validate: starting the {kind} server; log {spec.log_path}", file=sys.stderr, flush=True)
    with measure_loop().open(MeasureTarget(server=spec, tokenizer_model=args.model, pinning=pin)) as session:
        print(f"llm-emu validate: {kind} server up in {session.startup_s:.0f} s; pinning "
              f"{sorted(session.pinned.items())}{pin.describe()}", file=sys.stderr, flush=True)
        session.run_all(runs, on_result=persist, progress=kind)
    return rows


def _append(path: Path, row: dict[str, Any]) -> None:
    df = pd.DataFrame([row])
    if path.is_file():
        df = pd.concat([pd.read_parquet(path), df], ignore_index=True)
    atomic_write_parquet(path, df)


def report(out: Path, title: str, command: str = "") -> str:
    """errors.parquet + errors.md + validation.png from results.parquet (latest run per cell and side)."""
    from llm_emu.validate.plot import plot_validation

    results = pd.read_parquet(out / "results.parquet")
    # Keep the latest run per (kind, cell): reruns of one side replace earlier ones.
    results = results.groupby(["kind", "burstiness", "rate"], as_index=False).tail(1)
    errors = error_frame(results)
    atomic_write_parquet(out / "errors.parquet", errors)
    md = [f"# {title}\n"]
    if command:
        md.append(f"```\n{command}\n```\n")
    md.append("Signed % error of the emulator vs real vLLM, `100 * (emulated - real) / real`:\n")
    md.append(markdown_table(error_table(errors)))
    md.append("\n## Values\n")
    md.append(values_table(errors))
    text = "\n".join(md)
    atomic_write_text(out / "errors.md", text)
    if not errors.empty:
        plot_validation(errors, out / "validation.png", title)
    return text


def main(args: argparse.Namespace) -> int:
    from llm_emu.server import has_accelerator

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.profile).is_dir():
        raise EmuError(f"--profile {args.profile!r} is not a pack directory; capture one with `llm-emu profile`")
    user = list(getattr(args, "vllm_args", []) or [])
    if any(a.split("=", 1)[0] in ("--worker-cls", "--additional-config") for a in user):
        raise EmuError("--worker-cls/--additional-config are set by llm-emu; remove them")
    pin = ServerPinning.from_args(args, not has_accelerator())
    cells = [(b, r) for b in _floats(args.burstiness) for r in _floats(args.rates)]
    if not cells:
        raise EmuError("no cells: give --rates and --burstiness")
    atomic_write_json(out / "validate.json", {"argv": sys.argv, "pinning": pin.describe()})
    t0 = time.monotonic()
    per_start = int(getattr(args, "cells_per_start", 0) or 0) or len(cells)
    for i in range(0, len(cells), per_start):
        group = cells[i:i + per_start]
        for kind in (KIND_REAL, KIND_EMU):
            if args.only and args.only != kind:
                continue
            run_side(kind, args, pin, out, group)
    cmd = "llm-emu validate " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    text = report(out, f"llm-emu validate: {args.model}, {args.dataset}, {args.num_prompts} prompts/cell", cmd)
    print(text)
    print(f"llm-emu validate: done in {time.monotonic() - t0:.0f} s; results in {out}", file=sys.stderr)
    return 0
