"""Run a validation plan: both servers up at once, benchmark runs interleaved, every run on disk at once.

The real and the emulated server are started once each (through ``llm_emu.measure``) and stay up; the planned
runs (``validate.plan``: per cell real / emulated / real) go to one or the other in order, so the runs of a
cell are minutes apart instead of a whole side apart. An idle vLLM server costs about 0.2 % of a core
(measured: its API server's periodic stats), so the one waiting does not disturb the one measured.

Each run's row in ``results.parquet`` carries vLLM's metric keys, vLLM's own request timing from ``/metrics``
(``server_*_ms``, see ``validate.server_metrics``) and the run's time window on the wall and monotonic clocks
(the step report attributes trace lines to runs by it). A rerun with the same ``--out`` skips every
(cell, repeat) whose runs are all there and redoes the others from their first run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.benchclient import scalar_part
from llm_emu.fsutil import atomic_write_parquet
from llm_emu.validate import server_metrics
from llm_emu.validate.plan import PlannedRun

RESULTS = "results.parquet"
GROUP = ["burstiness", "rate", "repeat"]
"""vLLM result keys with per-request lists: kept in the client's JSON files, not in results.parquet."""


def timed_benchmark(base_url: str, model: str, workload: Any, **kwargs: Any) -> dict[str, Any]:
    """vLLM's benchmark client plus the run's time window and vLLM's request timing from ``/metrics``."""
    from llm_emu.benchclient import run_benchmark

    wall0, mono0, steal0 = time.time(), time.monotonic(), steal_seconds()
    before = server_metrics.scrape(base_url)
    result = run_benchmark(base_url, model, workload, **kwargs)
    time.sleep(0.05)  # the API server records a finished request's stats just after its last chunk
    result.update(server_metrics.cell_means(before, server_metrics.scrape(base_url)))
    result.update(t_wall_start=wall0, t_wall_end=time.time(), t_mono_start=mono0, t_mono_end=time.monotonic(),
                  steal_s=steal_seconds() - steal0)
    return result


def machine_cpu_seconds(stat: str = "/proc/stat") -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, all CPUs: busy is all but idle, iowait and steal;
    NaN where the kernel does not say."""
    try:
        with open(stat) as f:
            cols = [int(x) for x in f.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
        return (sum(cols) - cols[3] - cols[4] - cols[7]) / tick, cols[7] / tick
    except (OSError, ValueError, IndexError):
        return float("nan"), float("nan")


def steal_seconds(stat: str = "/proc/stat") -> float:
    """CPU time the hypervisor gave to other guests so far, all CPUs (s); NaN where the kernel does not say.

    A run during which this grows was measured on a shared host that took cycles away: a slow device there
    may be the neighbours, not the server (``validate --retime`` shows the device's speed per cell).
    """
    return machine_cpu_seconds(stat)[1]


def measure_loop() -> Any:
    """The measure loop of a validation: vLLM server processes, benchmarked with ``timed_benchmark``."""
    from llm_emu.measure.process import ServerLoop

    return ServerLoop(benchmark=timed_benchmark)


def pending(plan: list[PlannedRun], out: Path) -> list[PlannedRun]:
    """Planned runs still to do: whole (cell, repeat) groups, dropping partial ones from results.parquet."""
    path = out / RESULTS
    if not path.is_file():
        return plan
    done = pd.read_parquet(path)
    have = set(zip(done["kind"], done["burstiness"], done["rate"], done["repeat"], done["run"], strict=True))
    groups: dict[tuple[float, float, int], list[PlannedRun]] = {}
    for r in plan:
        groups.setdefault((r.burstiness, r.rate, r.repeat), []).append(r)
    complete = {g for g, runs in groups.items()
                if all((r.kind, r.burstiness, r.rate, r.repeat, r.run) in have for r in runs)}
    keys = list(zip(done["burstiness"], done["rate"], done["repeat"], strict=True))
    stale = [k in groups and k not in complete for k in keys]
    if any(stale):
        atomic_write_parquet(path, done[[not s for s in stale]].reset_index(drop=True))
    return [r for r in plan if (r.burstiness, r.rate, r.repeat) not in complete]


def append_row(out: Path, row: dict[str, Any]) -> None:
    """Append one run's row to results.parquet (rewritten atomically)."""
    path = out / RESULTS
    df = pd.DataFrame([row])
    if path.is_file():
        df = pd.concat([pd.read_parquet(path), df], ignore_index=True)
    atomic_write_parquet(path, df)


def run_plan(plan: list[PlannedRun], targets: dict[str, Any], make_run: Callable[[PlannedRun], Any],
             out: Path, loop: Any | None = None) -> int:
    """Open one session per side in ``targets`` (kind -> MeasureTarget), run ``plan`` in order, persist each run.

    Args:
        plan: the runs to do (``pending`` of the full plan).
        targets: what to serve per side.
        make_run: PlannedRun -> the BenchRun to measure.
        out: the validation directory.
        loop: the measure loop (default: ``measure_loop()``).

    Returns:
        The number of runs done.
    """
    from tqdm import tqdm

    loop = loop or measure_loop()
    kinds = [k for k in targets if any(r.kind == k for r in plan)]
    with contextlib.ExitStack() as stack:
        sessions = {}
        for kind in kinds:
            print(f"llm-emu validate: starting the {kind} server; log {targets[kind].server.log_path}",
                  file=sys.stderr, flush=True)
            sessions[kind] = session = stack.enter_context(loop.open(targets[kind]))
            print(f"llm-emu validate: {kind} server up in {session.startup_s:.0f} s; pinning "
                  f"{sorted(session.pinned.items())}", file=sys.stderr, flush=True)
        bar = tqdm(plan, desc="validate", unit="run", file=sys.stderr)
        for planned in bar:
            bar.set_postfix_str(planned.label)
            m = sessions[planned.kind].run(make_run(planned))
            append_row(out, {"kind": planned.kind, "rate": planned.rate, "burstiness": planned.burstiness,
                             "repeat": planned.repeat, "run": planned.run, "wall_s": m.wall_s,
                             "startup_s": m.startup_s, **scalar_part(m.result)})
    return len(plan)
