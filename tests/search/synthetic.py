"""A synthetic Evaluator with a known analytic response surface (the thing under test is the search).

Throughput rises with max_num_seqs and saturates; TTFT rises with max_num_batched_tokens and with the
offered rate relative to a config's capacity. Each result row carries ``slo_attainment`` as a trial would
(good requests / offered, against the factories' 500 ms TTFT SLO).
"""

from __future__ import annotations

import math
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
    n_bad = math.ceil(frac_bad * N_REQ - 1e-9)
    ttfts = [0.9 if i < n_bad else 0.1 for i in range(N_REQ)]
    itls = [[0.02, 0.02] for _ in range(N_REQ)]
    thr = min(rate, cap * 1.05)
    seqs = cfg.get("max_num_seqs", 64)
    p99 = 100.0 + cfg.get("max_num_batched_tokens", 2048) / 10.0 + 2.0 * seqs
    return {
        "request_throughput": thr,
        "output_throughput": thr * 100,
        "completed": N_REQ,
        "request_goodput": thr * (1 - n_bad / N_REQ),
        "p99_e2el_ms": p99,
        "mean_ttft_ms": 1000 * sum(ttfts) / N_REQ,
        "p99_ttft_ms": 900.0 if n_bad else 100.0,
        "slo_attainment": (N_REQ - n_bad) / N_REQ,
        "ttfts": ttfts,
        "itls": itls,
        "errors": [""] * N_REQ,
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


def smooth_metrics(cfg: Mapping[str, Any], rate: float) -> dict[str, Any]:
    """Throughput rises (saturating) with max_num_seqs and mildly with max_num_batched_tokens; latency rises
    with both, so the SLO holds only for max_num_seqs <= 192 and max_num_batched_tokens <= 6144.
    Optimum: (192, 6144) -> 10 * (1 - e^-3) + 3 = 12.50 req/s."""
    seqs, mnbt = cfg.get("max_num_seqs", 64), cfg.get("max_num_batched_tokens", 2048)
    thr = 10.0 * (1 - math.exp(-seqs / 64.0)) + mnbt / 2048.0
    ok = seqs <= 192 and mnbt <= 6144
    ttfts = [0.1 if ok or i % 2 else 0.9 for i in range(N_REQ)]
    return {
        "request_throughput": thr,
        "request_goodput": thr,
        "completed": N_REQ,
        "slo_attainment": sum(t <= 0.5 for t in ttfts) / N_REQ,
        "p99_e2el_ms": seqs + mnbt / 8,
        "ttfts": ttfts,
        "itls": [[0.02]] * N_REQ,
        "errors": [""] * N_REQ,
    }


class SmoothEvaluator(SyntheticEvaluator):
    """SyntheticEvaluator on the `smooth_metrics` surface."""

    def _one(self, r: TrialRequest) -> TrialOutcome:
        return TrialOutcome({rate: smooth_metrics(r.engine_args, rate) for rate in r.rates})
