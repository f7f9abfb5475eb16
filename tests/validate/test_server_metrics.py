"""vLLM's request histograms from /metrics: per-run means from two snapshots."""

from __future__ import annotations

import pytest

from llm_emu.validate.server_metrics import cell_means, parse

TEXT = """# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} {ttft}
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} {n}
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} {queue}
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} {n}
vllm:request_prefill_time_seconds_sum{engine="0",model_name="m"} 1.5
vllm:request_prefill_time_seconds_count{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="0",model_name="m"} 2.0
"""


def _snap(ttft: float, queue: float, n: float) -> dict[str, tuple[float, float]]:
    return parse(TEXT.replace("{ttft}", str(ttft)).replace("{queue}", str(queue)).replace("{n}", str(n)))


def test_parse_sums_and_counts() -> None:
    snap = _snap(2.0, 0.5, 4.0)
    assert snap["vllm:time_to_first_token_seconds"] == (2.0, 4.0)
    assert snap["vllm:e2e_request_latency_seconds"] == (0.0, 0.0)  # absent: zero


def test_cell_means_over_the_requests_between_snapshots() -> None:
    means = cell_means(_snap(2.0, 0.5, 4.0), _snap(3.0, 0.7, 8.0))
    assert means["server_ttft_ms"] == pytest.approx(1e3 * 1.0 / 4)
    assert means["server_queue_ms"] == pytest.approx(1e3 * 0.2 / 4)
    assert "server_prefill_ms" not in means  # no request finished its prefill in between
    assert cell_means(None, _snap(1.0, 1.0, 1.0)) == {}
