"""Virtual time: vLLM's real engine stepped on a simulated clock, many times faster than wall clock.

``run_virtual`` / ``run_virtual_cells`` answer benchmark runs with the same result dict as vLLM's benchmark
client against ``llm-emu serve``, deterministically (same spec and seed, same numbers, whatever else the machine
is doing). See ``llm_emu.virtual.loop`` for the event loop and ``llm_emu.virtual.host`` for the host-time model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_emu.benchclient import Workload
from llm_emu.engine.plugin import GATE_ENV
from llm_emu.errors import EmuError
from llm_emu.virtual.host import NO_HOST, HostModel
from llm_emu.virtual.runner import ERROR_FILE, cell_file


@dataclass(frozen=True)
class VirtualCell:
    """One benchmark run of a virtual job."""

    workload: Workload
    goodput: dict[str, float] | None = None
    """SLOs in ms with vLLM's --goodput keys."""
    client_args: tuple[str, ...] = ()
    """Further `vllm bench serve` flags."""
    reset_prefix_cache: bool = True
    """Reset the prefix cache before this run (not before the first)."""


def runner_env_vars() -> dict[str, str]:
    """What a process needs on top of its environment to run the engine in virtual time itself: the emulator's
    vLLM platform, the EngineCore in-process, offline (a runner process, or a sweep's virtual-time Ray actor)."""
    return {GATE_ENV: "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def runner_env() -> dict[str, str]:
    """Environment of a runner process: this one's plus ``runner_env_vars()``."""
    return {**os.environ, **runner_env_vars()}


def run_virtual_cells(model: str, profile: str, vllm_args: Sequence[str], cells: Sequence[VirtualCell], *,
                      oracle: str | None = None, seed: int = 0, host: HostModel = NO_HOST,
                      out_dir: str | Path | None = None, timeout_s: float | None = None) -> list[dict[str, Any]]:
    """Run every cell against one emulated server configuration in a runner process; results in order.

    Raises:
        EmuError: the runner's one-line error (bad profile, model, flags, workload ...).
    """
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="llm-emu-virtual-"))
    out.mkdir(parents=True, exist_ok=True)
    job = {
        "spec": {"model": model, "profile": profile, "vllm_args": list(vllm_args), "oracle": oracle, "seed": seed,
                 "host": asdict(host)},
        "cells": [{"workload": asdict(c.workload), "goodput": c.goodput, "client_args": list(c.client_args),
                   "reset_prefix_cache": c.reset_prefix_cache} for c in cells],
        "out": str(out),
    }
    job_path = out / "job.json"
    job_path.write_text(json.dumps(job, indent=1))
    with open(out / "runner.log", "ab") as log:
        proc = subprocess.run([sys.executable, "-m", "llm_emu.virtual.runner", str(job_path)], env=runner_env(),
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    error = out / ERROR_FILE
    if proc.returncode != 0 or error.exists():
        why = error.read_text().strip() if error.exists() else f"runner exited with {proc.returncode}"
        raise EmuError(f"virtual run failed: {why} (log: {out / 'runner.log'})")
    return [json.loads(cell_file(out, i).read_text()) for i in range(len(cells))]


def run_virtual(model: str, profile: str, vllm_args: Sequence[str], workload: Workload, *,
                oracle: str | None = None, seed: int = 0, goodput: dict[str, float] | None = None,
                client_args: Sequence[str] = (), host: HostModel = NO_HOST) -> dict[str, Any]:
    """One benchmark run in virtual time; vLLM's benchmark-client result keys (plus ``clock: virtual``)."""
    cell = VirtualCell(workload=workload, goodput=goodput, client_args=tuple(client_args))
    return run_virtual_cells(model, profile, vllm_args, [cell], oracle=oracle, seed=seed, host=host)[0]


__all__ = ["HostModel", "VirtualCell", "run_virtual", "run_virtual_cells"]
