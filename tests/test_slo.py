"""The one SLO definition: attainment is vLLM's own good-request count over the offered requests."""

from __future__ import annotations

import pytest

from llm_emu.errors import EmuError
from llm_emu.slo import SLOSpec, slo_attainment


def test_goodput_keys_are_vllms():
    assert SLOSpec(ttft_ms=500, e2el_ms=2000).goodput() == {"ttft": 500.0, "e2el": 2000.0}
    assert SLOSpec().goodput() == {}


def test_attainment_counts_failed_requests_as_misses():
    # vLLM counted 45 good requests (request_goodput = good / duration) of 50 offered, 48 completed
    result = {"request_goodput": 45 / 12.5, "duration": 12.5, "completed": 48}
    assert slo_attainment(result, SLOSpec(ttft_ms=100), 50) == 0.9
    assert SLOSpec(ttft_ms=100, attainment=0.9).met(0.9) and not SLOSpec(attainment=0.95).met(0.9)


def test_attainment_is_vllms_count_through_vllms_own_metrics():
    """Per-request times through vLLM's calculate_metrics (the code behind `vllm bench serve --goodput`)."""
    pytest.importorskip("vllm")
    from llm_emu.engine import compat

    outputs = []
    # ttft (s), latency (s), output tokens: the third misses TTFT, the fourth misses TPOT, the fifth failed
    for ttft, latency, n, ok in [(0.05, 0.5, 10, True), (0.09, 0.72, 10, True), (0.2, 0.3, 2, True),
                                 (0.05, 1.05, 11, True), (0.0, 0.0, 0, False)]:
        out = compat.request_func_output()
        out.success, out.ttft, out.latency, out.output_tokens, out.prompt_len = ok, ttft, latency, n, 8
        out.itl = [(latency - ttft) / max(n - 1, 1)] * max(n - 1, 0)
        outputs.append(out)
    from vllm.benchmarks.serve import calculate_metrics

    metrics, _ = calculate_metrics(input_requests=[None] * 5, outputs=outputs, dur_s=2.0, tokenizer=None,
                                   selected_percentiles=[99.0], goodput_config_dict={"ttft": 100.0, "tpot": 90.0})
    result = {"request_goodput": metrics.request_goodput, "duration": 2.0}
    assert slo_attainment(result, SLOSpec(ttft_ms=100, tpot_ms=90), 5) == 2 / 5


def test_no_slo_no_attainment_and_missing_goodput_is_one_line():
    assert slo_attainment({}, None, 10) is None
    with pytest.raises(EmuError, match="--goodput"):
        slo_attainment({"request_throughput": 3.0}, SLOSpec(ttft_ms=100), 10)
