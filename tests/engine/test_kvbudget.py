"""The target device's KV budget, computed like vLLM's GPU worker."""

from __future__ import annotations

from llm_emu.engine.kvbudget import kv_budget, kv_bytes_per_token, num_parameters
from tests.factories import LLAMA_8B


def test_llama_8b_shapes() -> None:
    assert abs(num_parameters(LLAMA_8B) - 8.03e9) / 8.03e9 < 0.005  # the published 8.03B
    assert kv_bytes_per_token(LLAMA_8B) == 2 * 8 * 128 * 2 * 32  # K+V, 8 KV heads x 128, bf16, 32 layers


def test_h100_budget_is_in_the_range_real_servers_report() -> None:
    b = kv_budget(LLAMA_8B, int(79.11 * 2**30), 0.92, 8192, 1024)
    tokens = b.kv_cache // kv_bytes_per_token(LLAMA_8B)
    # real vLLM 0.32 on an 80 GB H100 reports ~440k-470k tokens for Llama-3.1-8B at 0.92 utilisation
    assert 430_000 < tokens < 480_000


def test_more_utilisation_more_kv() -> None:
    lo = kv_budget(LLAMA_8B, 80 * 2**30, 0.8, 8192, 1024).kv_cache
    hi = kv_budget(LLAMA_8B, 80 * 2**30, 0.9, 8192, 1024).kv_cache
    assert hi - lo == int(80 * 2**30 * 0.9) - int(80 * 2**30 * 0.8)
