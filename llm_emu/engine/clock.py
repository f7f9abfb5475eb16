"""Clocks and the device timeline on which emulated steps are booked.

The clock is a replaceable component: ``WallClock`` sleeps for real (the server is driven by real clients);
``VirtualClock`` never sleeps: waiting for a step moves its time forward (llm_emu.virtual drives vLLM's engine
in-process on it).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Time source of the emulated device (seconds, monotonic)."""

    def now(self) -> float:
        """Current time in seconds."""
        ...

    def sleep_until(self, t: float) -> None:
        """Block until ``now() >= t`` (returns at once when already past)."""
        ...


class WallClock:
    """Real time: ``time.monotonic`` and ``time.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class VirtualClock:
    """Simulated time (seconds from 0): ``sleep_until`` moves time forward instead of waiting.

    Single-threaded by design: the virtual-time driver runs vLLM's engine loop, the emulated worker and the
    clock on one thread, so every result depends on the inputs and seeds only, never on host load.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        if t > self._t:
            self._t = float(t)

    def advance(self, dt: float) -> None:
        """Move time forward by ``dt`` seconds (host work that does not overlap the device)."""
        if dt > 0:
            self._t += float(dt)


@dataclass(frozen=True)
class Booking:
    """One step on the device timeline."""

    launched: float
    """When vLLM handed the step to the device."""
    start: float
    """When the device starts it: max(launched, end of the previous step) (pipeline: stage 0 is free)."""
    end: float
    """When its output is ready: start + device latency (pipeline: later if a stage was still busy)."""


#: Largest lateness credited to the next step. Sleep overshoot is ~0.1 ms; a longer delay is the host being
#: busy (descheduled threads), which must not be paid back by running later steps faster than the device.
MAX_CREDIT_S = 0.001
#: The credit only goes to a step launched within this time of the late release, i.e. one that vLLM launched
#: right after it (its host work between back-to-back steps is 0.4-5 ms on a 2-core machine). A step launched
#: later was started by something else (a request arriving at an idle engine) and the release did not delay it;
#: crediting it would shorten the first step after every idle period (a TTFT bias at light load).
CREDIT_WINDOW_S = 0.010


class DeviceTimeline:
    """The device queue: a step starts when it is launched and the device is free.

    Booking against the timeline (not sleeping for each latency from "now") keeps async scheduling's overlap
    of CPU work with device time. Sleep overshoot never accumulates: when a step's output is released late
    (``released``), that lateness (up to ``MAX_CREDIT_S``) is credited to the next step's launch, which vLLM
    could only make after the late release (the sync engine's case; with async scheduling the next step is
    already queued), provided it is launched within ``CREDIT_WINDOW_S`` of that release.

    With ``stages > 1`` the device is a pipeline (pipeline parallelism): a step's latency is its time through
    all stages, each stage takes an equal share of it and serves one step at a time, so the next step enters
    stage 0 as soon as the previous one has left it — as many steps are in flight as vLLM's batch queue holds.
    With one stage this is a single queue.
    """

    def __init__(self, clock: Clock, stages: int = 1) -> None:
        self.clock = clock
        self.stages = max(1, stages)
        self._free = [0.0] * self.stages
        self._busy_until = 0.0
        self._booked = False
        self._overshoot = 0.0
        self._released_at = 0.0
        self._lock = threading.Lock()

    def book(self, latency_s: float, launched: float | None = None) -> Booking:
        """Reserve ``latency_s`` seconds of device time for a step launched at ``launched`` (default now)."""
        t = self.clock.now() if launched is None else launched
        share = max(0.0, latency_s) / self.stages
        with self._lock:
            credit = self._overshoot if t - self._released_at <= CREDIT_WINDOW_S else 0.0
            start = end = max(t - credit, self._free[0])
            self._overshoot = 0.0
            for stage in range(self.stages):
                end = max(end, self._free[stage]) + share
                self._free[stage] = end
            self._busy_until = end
            self._booked = True
        return Booking(launched=t, start=start, end=end)

    def idle_before(self, launched: float) -> float:
        """How long the device will have been idle when a step launched at ``launched`` starts (0: busy).

        Before the first step it has been idle for ever (``inf``), as a server's device before its first request."""
        with self._lock:
            if not self._booked:
                return math.inf
            return max(0.0, launched - self._busy_until)

    def released(self, booking: Booking, at: float) -> None:
        """Record that ``booking``'s output reached vLLM at ``at`` (its lateness is credited once)."""
        with self._lock:
            if booking.end == self._busy_until:
                self._overshoot = min(MAX_CREDIT_S, max(0.0, at - booking.end))
                self._released_at = at
