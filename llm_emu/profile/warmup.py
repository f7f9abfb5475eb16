"""Device warm-up after idle periods: the first steps after the device sat idle take longer.

Measured on real vLLM-CPU (tiny-llama, float32, 2-core machine, 2026-12-03, ``bench/idle_probe.py``; table in
docs/FIDELITY.md, "The first steps after an idle device"): a 138-token prefill took 6.2 ms after less than 50 ms
of idle device and 8.5-9.3 ms after 50 ms to 2 s. The thread's CPU time grew with the wall time, so the core
executes more slowly for a while after it was idle (clock and cache state); it is not waiting for the CPU. At
light load almost every request's prefill is such a step, so a device model without this effect is optimistic
on TTFT exactly where the machine is idle most of the time. The size is the machine's: a CI host's real
prefills at light load took twice the pack's time.

The model is measured, not assumed. The capture records when every step started and ended; a step that starts
at least ``MIN_IDLE_S`` after the previous one ended opens a *warm-up run*, and it and the next
``POSITIONS - 1`` steps are its positions 0, 1, ... The pack's step table keeps only the other steps (the
device that was busy a moment ago). For each (idle-time bin, position) the warm-up model holds the median extra
time of a warm-up step over the warm steps of the same batch shape (same prefill tokens, prefill and decode
requests, context within 10 %): additive, in microseconds. The capture plan runs the same prompts once back to
back and once at a slow rate, so every warm-up step of those runs has such a reference; a paired difference
does not depend on how well the oracle interpolates that shape. The emulator adds the extra to the steps it
books after the same idle time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MIN_IDLE_S = 0.05
"""Device idle time from which the next step starts a warm-up run. Below it the device counts as busy: the
host's own gap between back-to-back steps is 0.3-5 ms, and the benchmark client's gap between a closed loop's
requests a few ms more, and the pack's step table measured those conditions."""
IDLE_EDGES_S: tuple[float, ...] = (0.05, 0.2, 0.6, 1.5)
"""Lower edges of the idle-time bins (seconds); the last bin is open-ended."""
POSITIONS = 4
"""Steps of a warm-up run with their own extra time: the first one after the idle period and the next three."""
MIN_SAMPLES = 3
"""Warm-up steps a (bin, position) cell needs for its own median; fewer borrow the nearest shorter-idle bin."""


@dataclass(frozen=True)
class Warmup:
    """Extra device time of the first steps after an idle period, by idle-time bin and position."""

    edges_s: tuple[float, ...] = IDLE_EDGES_S
    extra_us: tuple[tuple[float, ...], ...] = ()
    """``extra_us[bin][position]``: median extra microseconds (empty: no warm-up model)."""
    samples: tuple[tuple[int, ...], ...] = ()
    """Warm-up steps behind each cell (0: borrowed from the nearest shorter-idle bin, or none)."""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.extra_us)

    def extra_s(self, idle_s: float, position: int) -> float:
        """Extra seconds for the step at ``position`` of a warm-up run opened by ``idle_s`` of idle device."""
        if not self.extra_us or position >= len(self.extra_us[0]) or not idle_s >= self.edges_s[0]:
            return 0.0
        b = bisect.bisect_right(self.edges_s, idle_s) - 1
        return self.extra_us[b][position] * 1e-6

    def to_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        return {"min_idle_s": MIN_IDLE_S, "edges_s": list(self.edges_s),
                "extra_us": [list(r) for r in self.extra_us], "samples": [list(r) for r in self.samples],
                **({"notes": self.notes} if self.notes else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Warmup:
        """Parse ``profile.json``'s ``warmup``; ValueError names what is wrong with it."""
        if not data:
            return cls()
        try:
            w = cls(edges_s=tuple(float(e) for e in data["edges_s"]),
                    extra_us=tuple(tuple(float(v) for v in r) for r in data["extra_us"]),
                    samples=tuple(tuple(int(v) for v in r) for r in data.get("samples", ())),
                    notes=dict(data.get("notes", {})))
        except KeyError as exc:
            raise ValueError(f"field {exc} is missing") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not numbers in the expected lists ({exc})") from None
        widths = {len(r) for r in w.extra_us}
        if len(w.extra_us) != len(w.edges_s) or len(widths) != 1 or list(w.edges_s) != sorted(w.edges_s):
            raise ValueError(f"extra_us needs one row per idle edge ({len(w.edges_s)}), all of one length, and "
                             "edges_s ascending")
        return w

    def describe(self) -> str:
        if not self.enabled:
            return "no device warm-up model"
        first = ", ".join(f">= {e:g} s: {r[0] / 1e3:+.2f} ms" for e, r in zip(self.edges_s, self.extra_us,
                                                                            strict=True))
        return f"first step after idle {first}"


class WarmupState:
    """The emulator's side: which warm-up position the next step is at, from the device's idle time."""

    def __init__(self, warmup: Warmup) -> None:
        self.warmup = warmup
        self._idle = 0.0
        self._position = POSITIONS

    def extra_s(self, idle_s: float) -> float:
        """Extra seconds of the step about to start after ``idle_s`` of idle device (call once per step)."""
        if idle_s >= MIN_IDLE_S:
            self._idle, self._position = idle_s, 0
        else:
            self._position += 1
        return self.warmup.extra_s(self._idle, self._position) if self.warmup.enabled else 0.0


def idle_bins(idle_s: np.ndarray) -> np.ndarray:
    """Index of each idle time's bin in ``IDLE_EDGES_S`` (-1: below the first edge, i.e. not a warm-up run)."""
    return np.searchsorted(IDLE_EDGES_S, idle_s, side="right") - 1


def warmup_positions(end_s: np.ndarray, latency_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step (in end-time order): the idle time that opened its warm-up run and its position in it.

    A step's start is its end minus its latency; it opens a run when it starts ``MIN_IDLE_S`` or more after the
    previous step ended (the first step always does). Positions past ``POSITIONS - 1`` are warm.
    """
    n = len(end_s)
    idle = np.empty(n)
    pos = np.empty(n, dtype=np.int64)
    prev_end, run_idle, p = -math.inf, math.inf, POSITIONS
    for i in range(n):
        gap = end_s[i] - latency_s[i] - prev_end
        if gap >= MIN_IDLE_S:
            run_idle, p = gap, 0
        else:
            p += 1
        idle[i], pos[i] = run_idle, p
        prev_end = end_s[i]
    return idle, pos


def split_warmup(steps: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(is_warmup_step, idle_s, position) for a capture's steps with ``t`` (end, seconds) and ``latency_us``."""
    order = np.argsort(steps["t"].to_numpy(), kind="stable")
    idle = np.empty(len(steps))
    pos = np.empty(len(steps), dtype=np.int64)
    idle[order], pos[order] = warmup_positions(steps["t"].to_numpy()[order],
                                               steps["latency_us"].to_numpy()[order] * 1e-6)
    idx = steps.index
    cold = pd.Series(pos < POSITIONS, index=idx)
    return cold, pd.Series(idle, index=idx), pd.Series(pos, index=idx)


SHAPE = ("num_prefill_tokens", "num_prefill_reqs", "num_decode_reqs")
"""Columns a warm reference step must share with a warm-up step."""
CONTEXT_TOLERANCE = 0.1
"""... and its KV context (decode + prefill context tokens) within this fraction (at least 16 tokens)."""
MIN_REFERENCES = 2
"""Warm steps of the same shape a warm-up step needs to be a sample."""


def same_shape_reference(warm_steps: pd.DataFrame) -> Callable[[pd.DataFrame], np.ndarray]:
    """Per step of a frame: median latency (us) of the warm steps of the same batch shape (NaN: too few)."""
    ctx = warm_steps["decode_context_tokens"].to_numpy() + warm_steps["prefill_context_tokens"].to_numpy()
    groups: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
    keys = warm_steps[list(SHAPE)].to_numpy(dtype=np.int64)
    lat = warm_steps["latency_us"].to_numpy(dtype=float)
    for key in {tuple(k) for k in keys.tolist()}:
        sel = (keys == np.array(key)).all(axis=1)
        groups[key] = (ctx[sel], lat[sel])

    def reference(steps: pd.DataFrame) -> np.ndarray:
        out = np.full(len(steps), np.nan)
        c = steps["decode_context_tokens"].to_numpy() + steps["prefill_context_tokens"].to_numpy()
        for i, key in enumerate(steps[list(SHAPE)].to_numpy(dtype=np.int64).tolist()):
            g = groups.get(tuple(key))
            if g is None:
                continue
            near = np.abs(g[0] - c[i]) <= max(16.0, CONTEXT_TOLERANCE * c[i])
            if near.sum() >= MIN_REFERENCES:
                out[i] = float(np.median(g[1][near]))
        return out

    return reference


def fit_warmup(cold_steps: pd.DataFrame, idle_s: pd.Series, position: pd.Series,
               reference_us: Callable[[pd.DataFrame], np.ndarray]) -> Warmup:
    """Median extra time per (idle bin, position) of the warm-up steps over ``reference_us`` (warm latency of
    the same batch, NaN where unknown: not a sample).

    The capture's first run (after the server's start: compilation, allocation) is never a sample.
    """
    if cold_steps.empty:
        return Warmup()
    extra = cold_steps["latency_us"].to_numpy() - np.asarray(reference_us(cold_steps), dtype=float)
    idle = idle_s.loc[cold_steps.index].to_numpy()
    pos = position.loc[cold_steps.index].to_numpy()
    ok = np.isfinite(idle) & np.isfinite(extra)
    bins = idle_bins(idle)
    table: list[list[float]] = []
    counts: list[list[int]] = []
    for b in range(len(IDLE_EDGES_S)):
        row, cnt = [], []
        for p in range(POSITIONS):
            sel = ok & (bins == b) & (pos == p)
            n = int(sel.sum())
            row.append(float(np.median(extra[sel])) if n >= MIN_SAMPLES else math.nan)
            cnt.append(n if n >= MIN_SAMPLES else 0)
        table.append(row)
        counts.append(cnt)
    if not any(c for r in counts for c in r):
        return Warmup()
    for p in range(POSITIONS):  # a thin cell borrows the nearest shorter-idle bin (0 when there is none)
        last = 0.0
        for b in range(len(IDLE_EDGES_S)):
            if math.isnan(table[b][p]):
                table[b][p] = last
            last = table[b][p]
    return Warmup(extra_us=tuple(tuple(round(v, 1) for v in r) for r in table),
                  samples=tuple(tuple(r) for r in counts),
                  notes={"warmup_steps": int(ok.sum())})
