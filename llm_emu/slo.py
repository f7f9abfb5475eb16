"""The one SLO definition: vLLM's own ``vllm bench serve --goodput``, and the attainment derived from it.

A request is *good* when every SLO given holds for it, with vLLM's definitions (vllm/benchmarks/serve.py,
``calculate_metrics``): ``ttft <= ttft_ms``, ``tpot <= tpot_ms`` with ``tpot = (e2el - ttft) / (output_len - 1)``
(0 for one-token outputs), ``e2el <= e2el_ms``; failed requests are never good. vLLM reports the good ones as
``request_goodput = good / duration``.

**SLO attainment** of one benchmark run = good requests / offered requests = ``request_goodput * duration /
num_prompts``: vLLM's own count, so a failed request counts as a miss. It is computed once, in the trial
(``orchestrator.runner``), for grid and search trials alike, in wall-clock and in virtual time; searches read
it from the trial's result and compare it with the same ``attainment`` target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_emu.errors import EmuError


@dataclass(frozen=True)
class SLOSpec:
    """Service-level objectives in vLLM's ``--goodput`` sense, and the fraction of good requests required."""

    ttft_ms: float | None = None
    """Time to first token limit (ms)."""
    tpot_ms: float | None = None
    """Time per output token limit (ms), vLLM's definition (first token excluded)."""
    e2el_ms: float | None = None
    """End-to-end latency limit (ms)."""
    attainment: float = 0.99
    """Fraction of offered requests that must be good for a (config, rate) to meet the SLO."""

    def goodput(self) -> dict[str, float]:
        """The SLOs as vLLM's ``--goodput`` mapping (keys ttft, tpot, e2el; ms)."""
        pairs = (("ttft", self.ttft_ms), ("tpot", self.tpot_ms), ("e2el", self.e2el_ms))
        return {k: float(v) for k, v in pairs if v is not None}

    def met(self, attainment: float | None) -> bool | None:
        """Whether an attainment reaches the target (None when there is none)."""
        return None if attainment is None else attainment >= self.attainment


def slo_attainment(result: Mapping[str, Any], slo: SLOSpec | None, num_prompts: int) -> float | None:
    """Good requests / offered requests of one run of vLLM's benchmark client (None without SLOs).

    Args:
        result: vLLM's result dict of a run made with ``--goodput slo.goodput()``.
        slo: the SLOs the run was made with.
        num_prompts: requests offered in the run.

    Raises:
        EmuError: the result has no ``request_goodput`` (the run was made without the SLOs as --goodput).
    """
    if slo is None or not slo.goodput():
        return None
    goodput, duration = result.get("request_goodput"), result.get("duration")
    if goodput is None or duration is None:
        raise EmuError("the benchmark result has no request_goodput/duration; run vLLM's client with the SLOs "
                       "as --goodput (BenchRun.goodput) to get SLO attainment")
    good = round(float(goodput) * float(duration))  # vLLM's integer count of good requests
    return good / max(num_prompts, 1)
