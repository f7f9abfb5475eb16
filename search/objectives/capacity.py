"""capacity: per config, the highest request rate whose SLO attainment meets the target.

Bisection on the rate axis between the spec's bounds, assuming attainment falls as the rate rises. All
configs of a batch bisect in lockstep: each round is one batch with one (or, in the first round, two: low
and high) rates per unfinished config. Measurements already taken for the config (e.g. by a
trial that was retried after its controller died) are reused, never re-run.
"""

from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import TrialState

from search.objectives.base import Objective, PendingTrial, TrialResult
from search.spec import CapacitySpec


@dataclass(frozen=True)
class Bracket:
    """What the measurements say: the best passing rate and the lowest failing rate above it."""

    passing: float | None
    failing: float | None


def bracket(attainment: dict[float, float], target: float) -> Bracket:
    """Highest passing rate below the lowest failing one (robust to a non-monotone measurement)."""
    failing = min((r for r, a in attainment.items() if a < target), default=None)
    passing = max((r for r, a in attainment.items() if a >= target and (failing is None or r < failing)), default=None)
    return Bracket(passing, failing)


def next_rates(attainment: dict[float, float], target: float, cap: CapacitySpec) -> tuple[float, ...]:
    """Rates to measure next for one config; () when its capacity is known."""
    b = bracket(attainment, target)
    if b.failing is not None and b.failing <= cap.low:
        return ()  # fails at the lowest rate: capacity 0
    if b.passing is not None and b.passing >= cap.high:
        return ()  # meets the SLO at the highest rate: capacity = high
    initial = tuple(r for r in (cap.low, cap.high) if r not in attainment)
    if initial:
        return initial
    lo = b.passing if b.passing is not None else cap.low
    hi = b.failing if b.failing is not None else cap.high
    if hi - lo <= cap.tolerance:
        return ()
    return (round((lo + hi) / 2, 6),)


def capacity_of(attainment: dict[float, float], target: float, cap: CapacitySpec) -> float:
    """The capacity once `next_rates` returns (): best passing rate within bounds, 0 if none."""
    b = bracket(attainment, target)
    return 0.0 if b.passing is None else min(b.passing, cap.high)


class Capacity(Objective):
    """Objective value = the highest rate (req/s) meeting the SLO; one trial = one bisection."""

    metric_names = ("capacity_req_s",)

    @property
    def bounds(self) -> CapacitySpec:
        """The bisection bounds (checked at load)."""
        assert self.spec.capacity is not None
        return self.spec.capacity

    @staticmethod
    def _attainment(p: PendingTrial) -> dict[float, float]:
        return {r: float(m["slo_attainment"]) for r, m in p.measurements.items()}

    def next_rates(self, p: PendingTrial) -> tuple[float, ...]:
        """The bisection's next rates for this config (both bounds first)."""
        assert self.target is not None
        return next_rates(self._attainment(p), self.target, self.bounds)

    def _scored(self, p: PendingTrial) -> TrialResult:
        assert self.target is not None
        att = self._attainment(p)
        b = bracket(att, self.target)
        return TrialResult(
            TrialState.COMPLETE,
            values=(capacity_of(att, self.target, self.bounds),),
            attrs={"capacity_bracket": [b.passing, b.failing], "rates_measured": len(att)},
        )
