"""SLO attainment: the fraction of requests that met every SLO."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from search.errors import SearchError
from search.spec import SloSpec


def _request_meets(ttft_s: float, itls_s: Sequence[float], slo: SloSpec) -> bool:
    ttft_ms = ttft_s * 1000.0
    # vLLM's TPOT excludes the first token; with per-request ITLs it is their mean.
    tpot_ms = 1000.0 * sum(itls_s) / len(itls_s) if itls_s else 0.0
    e2el_ms = ttft_ms + 1000.0 * sum(itls_s)
    checks = ((slo.ttft_ms, ttft_ms), (slo.tpot_ms, tpot_ms), (slo.e2el_ms, e2el_ms))
    return all(limit is None or value <= limit for limit, value in checks)


def slo_attainment(metrics: Mapping[str, Any], slo: SloSpec) -> float:
    """Fraction (0..1) of requests meeting all SLOs.

    Uses vLLM's per-request lists (`ttfts`, `itls`, in seconds; failed requests, marked in `errors`, count as
    misses) when present, else request_goodput / request_throughput (which needs the benchmark to have been
    run with these SLOs as --goodput).

    Raises:
        SearchError: neither the per-request lists nor request_goodput are in `metrics`.
    """
    ttfts, itls = metrics.get("ttfts"), metrics.get("itls")
    if ttfts is not None and itls is not None and len(ttfts) == len(itls):
        if not ttfts:
            return 0.0
        errors = metrics.get("errors") or [""] * len(ttfts)
        met = sum(not err and _request_meets(t, i, slo) for t, i, err in zip(ttfts, itls, errors, strict=False))
        return met / len(ttfts)
    goodput, throughput = metrics.get("request_goodput"), metrics.get("request_throughput")
    if goodput is None or throughput is None:
        raise SearchError(
            "metrics hold neither per-request ttfts/itls nor request_goodput; run the benchmark "
            "with --goodput (TrialRequest.goodput) or keep per-request details"
        )
    return float(goodput) / float(throughput) if throughput else 0.0


def summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar part of a vLLM result dict (per-request lists dropped), for trial user attrs and rows."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
