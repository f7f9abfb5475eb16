"""Run replay plans through the emulator with vLLM's own benchmark client, on the wall or the virtual clock.

Wall clock: one ``llm-emu serve`` process per distinct (model, profile, flags), prefix cache reset between rows
(a row's own warm-up run, where it has one, leaves its cache to the row).
Virtual clock: ``llm_emu.virtual.run_virtual`` (vLLM's engine in-process on a virtual clock; deterministic and
independent of machine load). Each row's result (vLLM's metric keys, per-request lists dropped) is written
atomically to ``OUT/results/<row_id>.json`` together with its plan and deviations.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from itertools import groupby
from pathlib import Path
from typing import Any

from llm_emu.benchclient import scalar_part
from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_json
from llm_emu.reference.plan import ReplayPlan

CLOCKS = ("wall", "virtual")

Runner = Callable[[ReplayPlan, Path], dict[str, Any]]


def _virtual_rows(plans: Sequence[ReplayPlan], out_dir: Path,
                  host: Any = None) -> Iterator[tuple[ReplayPlan, dict[str, Any]]]:
    """One runner process per server configuration; its rows are cells of that job (prefix cache reset between)."""
    try:
        from llm_emu.virtual import VirtualCell, run_virtual_cells
        from llm_emu.virtual.host import HostModel
    except ImportError:
        raise EmuError("the virtual clock is not available in this llm-emu (llm_emu.virtual is missing); "
                       "use --clock wall") from None
    for key, grouped in groupby(plans, key=lambda p: p.server_key):
        model, profile, vllm_args, host_ms = key
        group = list(grouped)
        cells, measured = [], []
        for p in group:
            if p.warmup is not None:  # the warm-up's result is dropped; the measured run keeps its prefix cache
                cells.append(VirtualCell(workload=p.warmup))
            measured.append(len(cells))
            cells.append(VirtualCell(workload=p.workload, reset_prefix_cache=p.warmup is None))
        model_host = host or HostModel(request_in_s=host_ms[0] / 1000.0, step_base_s=host_ms[1] / 1000.0,
                                       step_per_req_s=host_ms[2] / 1000.0,
                                       source="reference calibration")
        work = out_dir / "virtual" / hashlib.sha256(repr(key).encode()).hexdigest()[:8]
        results = run_virtual_cells(model, profile, vllm_args, cells, seed=group[0].workload.seed,
                                    host=model_host, out_dir=work)
        yield from zip(group, [results[i] for i in measured], strict=True)


def _wall_rows(plans: Sequence[ReplayPlan], out_dir: Path) -> Iterator[tuple[ReplayPlan, dict[str, Any]]]:
    """One `llm-emu serve` per server configuration; prefix cache reset before each row."""
    from llm_emu.benchclient import run_benchmark
    from llm_emu.server import ServerProcess, ServerSpec

    for key, group in groupby(plans, key=lambda p: p.server_key):
        model, profile, vllm_args, _ = key
        tag = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
        spec = ServerSpec(kind="emulated", model=model, profile=profile, vllm_args=vllm_args,
                          log_path=out_dir / "logs" / f"server-{tag}.log")
        with ServerProcess(spec) as server:
            for plan in group:
                server.reset_prefix_cache()
                if plan.warmup is not None:
                    run_benchmark(server.base_url, server.served_model, plan.warmup, tokenizer_model=model,
                                  result_dir=out_dir / "client")
                yield plan, run_benchmark(server.base_url, server.served_model, plan.workload,
                                          tokenizer_model=model, result_dir=out_dir / "client")


def _save(out_dir: Path, plan: ReplayPlan, result: dict[str, Any], clock: str, wall_s: float) -> None:
    body = {
        "row_id": plan.row.row_id, "clock": clock, "wall_s": round(wall_s, 2), "profile": plan.profile,
        "model": plan.model, "vllm_args": list(plan.vllm_args), "deviations": list(plan.deviations),
        "workload": {k: v for k, v in asdict(plan.workload).items()},
        "result": scalar_part(result),
    }
    atomic_write_json(out_dir / "results" / f"{plan.row.row_id}.json", body)


def replay(plans: Sequence[ReplayPlan], clock: str, out_dir: Path, runner: Runner | None = None,
           host: Any = None) -> Iterator[tuple[ReplayPlan, dict[str, Any]]]:
    """Replay ``plans`` (rows sharing a server configuration are grouped) and yield (plan, result) per row.

    Args:
        plans: what to replay.
        clock: "wall" or "virtual".
        out_dir: where results (and server or runner logs) go.
        runner: replaces the per-row runner (tests).
        host: virtual clock only: the ``llm_emu.virtual.HostModel`` to charge (None: pure device time).
    """
    if clock not in CLOCKS:
        raise EmuError(f"unknown clock {clock!r}; valid are {list(CLOCKS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if runner is not None:
        rows: Iterator[tuple[ReplayPlan, dict[str, Any]]] = ((p, runner(p, out_dir)) for p in plans)
    else:
        ordered = sorted(plans, key=lambda p: repr(p.server_key))
        rows = _wall_rows(ordered, out_dir) if clock == "wall" else _virtual_rows(ordered, out_dir, host)
    for plan, result in rows:
        _save(out_dir, plan, result, clock, time.monotonic() - t0)
        yield plan, result
        t0 = time.monotonic()
