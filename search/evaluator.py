"""The boundary between `search/` (what to try) and the orchestrator (where and how it runs).

A **proposal source** (Ray Tune's Searcher shape: the grid, an Optuna study) hands out batches of
``TrialRequest``s and is told each one's ``TrialOutcome``; an **evaluator** (the orchestrator's Ray executor, or a
test double) turns requests into outcomes. `search/` never imports Ray.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Status = Literal["ok", "failed", "pruned"]
STATUS_OK: Status = "ok"
STATUS_FAILED: Status = "failed"
STATUS_PRUNED: Status = "pruned"


def config_key(engine_args: Mapping[str, Any]) -> str:
    """Content hash of an engine config (order-independent), used to spot configs proposed twice."""
    blob = json.dumps(dict(engine_args), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrialRequest:
    """One engine config to serve and the request rates to benchmark it at.

    The evaluator serves ``engine_args`` once and runs vLLM's benchmark client once per rate, in order, with
    the spec's workload and SLOs (resetting the prefix cache between rates).
    """

    engine_args: Mapping[str, Any]
    """The full engine config: the spec's base engine args merged with ``overrides`` (vLLM Python names)."""
    rates: tuple[float, ...]
    """Request rates (req/s) to benchmark."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """The varied part of the config only (a grid point, or an Optuna trial's params; {} = the base config)."""
    number: int = -1
    """The source's number for it (grid index, Optuna trial number): labels, and how outcomes find their way
    back to the source."""
    clock: Literal["wall", "virtual"] | None = None
    """Run in this clock instead of the spec's (None: the spec's); the wall-clock re-check of a search."""

    @property
    def key(self) -> str:
        """Content hash of ``engine_args``."""
        return config_key(self.engine_args)


@dataclass(frozen=True)
class TrialOutcome:
    """What running (or pruning) a TrialRequest produced.

    ``metrics`` maps each measured rate to the trial's result row for it: vLLM's scalar result keys
    (request_throughput, request_goodput, p99_ttft_ms, ...) plus ``slo_attainment`` and ``meets_slo``, computed
    once in the trial with vLLM's goodput definition (see llm_emu.slo), and ``clock``.
    """

    metrics: Mapping[float, Mapping[str, Any]]
    status: Status = STATUS_OK
    """"ok"; "failed" (server did not start, benchmark crashed, ... after every retry); "pruned" (not run:
    vLLM would refuse the config, or a spec constraint excludes it)."""
    error: str | None = None
    """One-line reason when failed (the last attempt's error) or pruned."""
    trial_hash: str | None = None
    """The orchestrator's key of the trial that produced it (its row in results.parquet)."""

    @property
    def ok(self) -> bool:
        """Whether it was measured."""
        return self.status == STATUS_OK


@runtime_checkable
class Evaluator(Protocol):
    """Runs batches of trials. Implemented by the orchestrator (Ray actors) and by test doubles.

    Contract:
        * ``evaluate`` returns one TrialOutcome per request, in the same order; it may run them in parallel.
        * It never raises for a single trial's failure: that trial gets status "failed" and an ``error``.
        * Outcomes of status "ok" hold a result row for every requested rate.
        * It must be callable repeatedly from one thread (the controller).
    """

    def evaluate(self, requests: list[TrialRequest]) -> list[TrialOutcome]:
        """Run ``requests`` (in parallel where resources allow) and return their outcomes in order."""
        ...


class ProposalSource(Protocol):
    """Decides what to try (Ray Tune's Searcher shape); the pipeline decides where and how it runs.

    Contract: ``ask`` returns the next batch to run together ([] when done); every request of a batch is
    ``tell``-ed its outcome before the next ``ask``. ``describe`` and ``preview`` have no side effects (they
    serve ``--dry-run``).
    """

    def describe(self) -> list[str]:
        """Lines for the dry-run plan (what would be tried, the budget)."""
        ...

    def preview(self) -> list[TrialRequest] | None:
        """Every request, when known in advance (a grid); None for adaptive sources."""
        ...

    def ask(self) -> list[TrialRequest]:
        """The next batch ([] = finished)."""
        ...

    def tell(self, request: TrialRequest, outcome: TrialOutcome) -> None:
        """The outcome of one request of the last batch."""
        ...


def drive(source: ProposalSource, evaluator: Evaluator) -> int:
    """Ask, evaluate, tell until the source is done; returns the number of requests evaluated."""
    total = 0
    while batch := source.ask():
        for request, outcome in zip(batch, evaluator.evaluate(batch), strict=True):
            source.tell(request, outcome)
        total += len(batch)
    return total
