"""Objective registry: spec `objective` name -> Objective class."""

from __future__ import annotations

from search.objectives.base import Objective, PendingTrial, TrialResult
from search.objectives.capacity import Capacity
from search.objectives.pareto import Pareto
from search.objectives.slo_throughput import SloThroughput
from search.spec import SearchSpec

OBJECTIVE_REGISTRY: dict[str, type[Objective]] = {
    "slo_throughput": SloThroughput,
    "capacity": Capacity,
    "pareto": Pareto,
}

__all__ = ["OBJECTIVE_REGISTRY", "Objective", "PendingTrial", "TrialResult", "make_objective"]


def make_objective(spec: SearchSpec, target: float | None) -> Objective:
    """The objective named by ``spec.objective`` (validated at load), with the SLO attainment target."""
    return OBJECTIVE_REGISTRY[spec.objective](spec, target)
