"""The boundary between `search/` (what to try) and the orchestrator (where and how it runs).

`search/` never imports Ray: it hands batches of TrialRequests to any object satisfying `Evaluator`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

STATUS_OK = "ok"
STATUS_FAILED = "failed"


def config_key(engine_args: Mapping[str, Any]) -> str:
    """Content hash of an engine config (order-independent), used to key trials and results."""
    blob = json.dumps(dict(engine_args), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrialRequest:
    """One engine config to serve and the request rates to benchmark it at.

    The evaluator starts ONE server per request with `engine_args` and runs vLLM's benchmark client once
    per rate, in the given order, against that server (resetting the prefix cache between rates).
    """

    engine_args: Mapping[str, Any]
    """The full engine config: the sweep's base engine args merged with `overrides` (vLLM Python names)."""
    rates: tuple[float, ...]
    """Request rates (req/s) to benchmark, each with the sweep's workload."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """The searched part of the config only ({} = the sweep's base config = the baseline)."""
    goodput: Mapping[str, float] = field(default_factory=dict)
    """SLOs as vLLM's --goodput keys in ms ({"ttft": 500, "tpot": 50, "e2el": 2000}); {} = none."""
    trial_number: int = -1
    """Optuna trial number (for logs and result rows)."""

    @property
    def key(self) -> str:
        """Content hash of `engine_args`."""
        return config_key(self.engine_args)


@dataclass(frozen=True)
class TrialOutcome:
    """What running a TrialRequest produced.

    `metrics` maps each rate that was measured to vLLM's benchmark result dict for it (request_throughput,
    output_throughput, request_goodput, completed, mean_/p99_{ttft,tpot,itl,e2el}_ms, ... and, where the
    client provides them, per-request lists ttfts/itls (seconds), input_lens, output_lens, errors).
    """

    metrics: Mapping[float, Mapping[str, Any]]
    status: str = STATUS_OK
    """"ok", or "failed" (server did not start, benchmark crashed, ...)."""
    error: str | None = None
    """One-line reason when status is "failed"."""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@runtime_checkable
class Evaluator(Protocol):
    """Runs batches of trials. Implemented by the orchestrator (Ray actors) and by test doubles.

    Contract:
        * `evaluate` returns one TrialOutcome per request, in the same order; it may run them in parallel.
        * It never raises for a single trial's failure: that trial gets status "failed" and an `error`.
        * Outcomes of status "ok" hold a metric dict for every requested rate.
        * It must be callable repeatedly from one thread (the search controller).
    """

    def evaluate(self, requests: list[TrialRequest]) -> list[TrialOutcome]:
        """Run `requests` (in parallel where resources allow) and return their outcomes in order."""
        ...
