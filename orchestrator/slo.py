"""SLO attainment: the fraction of requests meeting every SLO, with vLLM's --goodput definitions.

vLLM counts a request as good when ``ttft <= ttft_ms``, ``tpot <= tpot_ms`` and ``e2el <= e2el_ms`` for
every SLO given, with ``tpot = (e2el - ttft) / (output_len - 1)`` (0 for one-token outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.spec import SLOSpec


def _good(ttft_s: float, itls_s: Sequence[float], out_len: int, slo: SLOSpec) -> bool:
    e2el_ms = 1000.0 * (ttft_s + sum(itls_s))
    tpot_ms = (e2el_ms - 1000.0 * ttft_s) / (out_len - 1) if out_len > 1 else 0.0
    checks = ((slo.ttft_ms, 1000.0 * ttft_s), (slo.tpot_ms, tpot_ms), (slo.e2el_ms, e2el_ms))
    return all(limit is None or value <= limit for limit, value in checks)


def _from_requests(result: Mapping[str, Any], slo: SLOSpec) -> float | None:
    ttfts, itls, outs = result.get("ttfts"), result.get("itls"), result.get("output_lens")
    if not (isinstance(ttfts, list) and isinstance(itls, list) and isinstance(outs, list)) or not ttfts:
        return None
    if not len(ttfts) == len(itls) == len(outs):
        return None
    errors = result.get("errors") or [""] * len(ttfts)
    good = sum(
        1 for t, gaps, n, err in zip(ttfts, itls, outs, errors, strict=False)
        if not err and n and _good(float(t), gaps or (), int(n), slo)
    )
    return good / len(ttfts)


def attainment(result: Mapping[str, Any], slo: SLOSpec | None, num_prompts: int) -> float | None:
    """Fraction of the ``num_prompts`` offered requests that met all SLOs (failed requests count as misses).

    Computed from vLLM's per-request lists (ttfts, itls, output_lens, errors) when present, else from
    ``request_goodput / request_throughput`` (good/completed) scaled by completed/num_prompts.
    None without SLOs or without the needed keys.
    """
    if slo is None or not slo.goodput():
        return None
    exact = _from_requests(result, slo)
    if exact is not None:
        return exact
    goodput, throughput = result.get("request_goodput"), result.get("request_throughput")
    completed = result.get("completed", num_prompts)
    if goodput is None or not throughput:
        return None
    return float(goodput) / float(throughput) * float(completed) / max(num_prompts, 1)


def scalar_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric scalar keys of vLLM's result dict (per-request lists and strings dropped)."""
    return {
        k: float(v) for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
