"""Run replay plans through the emulator with vLLM's own benchmark client, on the wall or the virtual clock.

Wall clock: one ``llm-emu serve`` process per distinct (model, profile, flags), prefix cache reset between rows.
Virtual clock: ``llm_emu.virtual.run_virtual`` (vLLM's engine in-process on a virtual clock; deterministic and
independent of machine load). Each row's result (vLLM's metric keys, per-request lists dropped) is written
atomically to ``OUT/results/<row_id>.json`` together with its plan and deviations.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from itertools import groupby
from pathlib import Path
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.reference.plan import ReplayPlan

CLOCKS = ("wall", "virtual")
_LISTS = ("ttfts", "itls", "input_lens", "output_lens", "start_times", "errors", "generated_texts")

Runner = Callable[[ReplayPlan, Path], dict[str, Any]]


def _virtual_runner(plan: ReplayPlan, out_dir: Path) -> dict[str, Any]:
    try:
        from llm_emu.virtual import run_virtual
    except ImportError:
        raise EmuError("the virtual clock is not available in this llm-emu (llm_emu.virtual is missing); "
                       "use --clock wall") from None
    return dict(run_virtual(plan.model, plan.profile, list(plan.vllm_args), plan.workload,
                            seed=plan.workload.seed))


def _wall_rows(plans: Sequence[ReplayPlan], out_dir: Path) -> Iterator[tuple[ReplayPlan, dict[str, Any]]]:
    from llm_emu.benchclient import run_benchmark
    from llm_emu.server import ServerProcess, ServerSpec

    for key, group in groupby(plans, key=lambda p: p.server_key):
        model, profile, vllm_args = key
        tag = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
        spec = ServerSpec(kind="emulated", model=model, profile=profile, vllm_args=vllm_args,
                          log_path=out_dir / "logs" / f"server-{tag}.log")
        with ServerProcess(spec) as server:
            for plan in group:
                server.reset_prefix_cache()
                yield plan, run_benchmark(server.base_url, server.served_model, plan.workload,
                                          tokenizer_model=model, result_dir=out_dir / "client")


def _save(out_dir: Path, plan: ReplayPlan, result: dict[str, Any], clock: str, wall_s: float) -> None:
    body = {
        "row_id": plan.row.row_id, "clock": clock, "wall_s": round(wall_s, 2), "profile": plan.profile,
        "model": plan.model, "vllm_args": list(plan.vllm_args), "deviations": list(plan.deviations),
        "workload": {k: v for k, v in asdict(plan.workload).items()},
        "result": {k: v for k, v in result.items() if k not in _LISTS},
    }
    dest = out_dir / "results" / f"{plan.row.row_id}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def replay(plans: Sequence[ReplayPlan], clock: str, out_dir: Path,
           runner: Runner | None = None) -> Iterator[tuple[ReplayPlan, dict[str, Any]]]:
    """Replay ``plans`` (rows sharing a server are grouped) and yield (plan, result) as each row finishes.

    Args:
        plans: what to replay.
        clock: "wall" or "virtual".
        out_dir: where results (and wall-clock server logs) go.
        runner: replaces the per-row virtual runner (tests).
    """
    if clock not in CLOCKS:
        raise EmuError(f"unknown clock {clock!r}; valid are {list(CLOCKS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if clock == "wall" and runner is None:
        ordered = sorted(plans, key=lambda p: repr(p.server_key))
        t0 = time.monotonic()
        for plan, result in _wall_rows(ordered, out_dir):
            _save(out_dir, plan, result, clock, time.monotonic() - t0)
            yield plan, result
            t0 = time.monotonic()
        return
    run = runner or _virtual_runner
    for plan in plans:
        t0 = time.monotonic()
        result = run(plan, out_dir)
        _save(out_dir, plan, result, clock, time.monotonic() - t0)
        yield plan, result
