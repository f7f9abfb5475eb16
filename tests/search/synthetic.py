"""A synthetic Evaluator with a known analytic response surface (the thing under test is the search).

Throughput rises with max_num_seqs and saturates; TTFT rises with max_num_batched_tokens and with the
offered rate relative to a config's capacity. Per-request lists are generated so attainment is exact.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from search.evaluator import TrialOutcome, TrialRequest

N_REQ = 100


def capacity(cfg: Mapping[str, Any]) -> float:
    """The rate (req/s) at which 10 % of requests start missing a 500 ms TTFT SLO."""
    return 2.0 + cfg.get("max_num_seqs", 64) / 16.0 - cfg.get("max_num_batched_tokens", 2048) / 4096.0


def metrics_for(cfg: Mapping[str, Any], rate: float) -> dict[str, Any]:
    cap = capacity(cfg)
    # Request i misses the SLO iff its "load index" exceeds the headroom: attainment falls linearly past cap.
    frac_bad = min(1.0, max(0.0, (rate - cap) / cap + 0.1 * (rate >= cap)))
    n_bad = round(frac_bad * N_REQ)
    ttfts = [0.9 if i < n_bad else 0.1 for i in range(N_REQ)]
    itls = [[0.02, 0.02] for _ in range(N_REQ)]
    thr = min(rate, cap * 1.05)
    seqs = cfg.get("max_num_seqs", 64)
    p99 = 100.0 + cfg.get("max_num_batched_tokens", 2048) / 10.0 + 2.0 * seqs
    return {
        "request_throughput": thr, "output_throughput": thr * 100, "completed": N_REQ,
        "request_goodput": thr * (1 - n_bad / N_REQ), "p99_e2el_ms": p99, "mean_ttft_ms": 1000 * sum(ttfts) / N_REQ,
        "p99_ttft_ms": 900.0 if n_bad else 100.0, "ttfts": ttfts, "itls": itls, "errors": [""] * N_REQ,
    }


class SyntheticEvaluator:
    """Evaluator double: deterministic metrics, optional per-batch delay, records what it was asked."""

    def __init__(self, delay_s: float = 0.0, fail_if: Mapping[str, Any] | None = None) -> None:
        self.delay_s, self.fail_if = delay_s, dict(fail_if or {})
        self.calls: list[TrialRequest] = []

    def evaluate(self, requests: list[TrialRequest]) -> list[TrialOutcome]:
        self.calls.extend(requests)
        time.sleep(self.delay_s)
        return [self._one(r) for r in requests]

    def _one(self, r: TrialRequest) -> TrialOutcome:
        if self.fail_if and all(r.engine_args.get(k) == v for k, v in self.fail_if.items()):
            return TrialOutcome({}, status="failed", error="server exited with code 1")
        return TrialOutcome({rate: metrics_for(r.engine_args, rate) for rate in r.rates})
