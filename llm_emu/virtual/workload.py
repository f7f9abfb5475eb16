"""The requests of a virtual-time run: exactly what vLLM's benchmark client would send, and when.

The client's own code samples the dataset (``vllm.benchmarks.datasets.get_samples`` on the argv that
``llm_emu.benchclient.build_client_argv`` builds), after the same seeding as ``vllm bench serve``; the arrival
offsets follow the client's ``get_request`` (gamma inter-arrival times from the same global numpy stream,
rescaled to ``num_prompts / rate``). The one difference: nothing waits for them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llm_emu.benchclient import Workload, build_client_argv, parse_client_args
from llm_emu.engine import compat


@dataclass(frozen=True)
class ClientRun:
    """One benchmark run as the client would make it: its parsed arguments, requests and arrival offsets."""

    args: Any
    """vLLM's parsed `vllm bench serve` Namespace (after the client's own argument mapping)."""
    requests: list[Any]
    """vLLM ``SampleRequest`` objects, in send order."""
    offsets_s: list[float]
    """Seconds from the start of the run at which each request is sent (before any concurrency limit)."""
    goodput: dict[str, float]
    """vLLM's goodput config (metric -> ms), empty without SLOs."""


def client_args(model: str, workload: Workload, *, tokenizer_model: str,
                goodput: dict[str, float] | None = None, extra_args: Sequence[str] = ()) -> Any:
    """vLLM's benchmark-client Namespace for this workload (the same argv a wall-clock run uses)."""
    # The client is never run: the result dir only satisfies its parser (virtual runs write their own results).
    argv = build_client_argv("http://virtual", model, workload, tokenizer_model=tokenizer_model, goodput=goodput,
                             result_dir=Path("/nonexistent"), result_filename="virtual.json", extra_args=extra_args)
    return parse_client_args(argv)


def arrival_offsets(n: int, request_rate: float, burstiness: float) -> list[float]:
    """Send offsets of ``n`` requests as vLLM's ``get_request`` computes them (global numpy RNG, in order).

    Mirrors vLLM's client: inf rate -> all at 0; inf burstiness -> constant gaps; else gamma(shape=burstiness,
    scale=1/(rate*burstiness)) gaps, cumulated, then rescaled so the last one lands at n / rate.
    """
    if math.isinf(request_rate):
        return [0.0] * n
    if math.isinf(burstiness):
        delays = [1.0 / request_rate] * n
    else:
        theta = 1.0 / (request_rate * burstiness)
        delays = [float(np.random.gamma(shape=burstiness, scale=theta)) for _ in range(n)]
    total = 0.0
    cumulative = []
    for d in delays:
        total += d
        cumulative.append(total)
    if cumulative and cumulative[-1] != 0:
        factor = (n / request_rate) / cumulative[-1]
        cumulative = [c * factor for c in cumulative]
    return cumulative


#: Sampled requests (and the RNG states right after sampling) by the client arguments that decide them:
#: runs at several rates of one trial sample the same requests, and loading ShareGPT takes seconds.
_SAMPLES: dict[str, tuple[list[Any], Any, Any]] = {}
_RATE_KEYS = ("request_rate", "burstiness", "max_concurrency", "result_dir", "result_filename", "goodput")


def _sample(args: Any) -> list[Any]:
    key = repr(sorted((k, repr(v)) for k, v in vars(args).items() if k not in _RATE_KEYS))
    hit = _SAMPLES.get(key)
    if hit is None:
        random.seed(args.seed)
        np.random.seed(args.seed)
        requests = compat.sample_client_requests(args, compat.client_tokenizer(args))
        hit = _SAMPLES[key] = (requests, random.getstate(), np.random.get_state())
    requests, py_state, np_state = hit
    random.setstate(py_state)  # as if the client had just sampled them: arrival draws continue the stream
    np.random.set_state(np_state)
    return list(requests)


def prepare_run(args: Any) -> ClientRun:
    """Seed like ``vllm bench serve``, sample its requests with its own dataset code, draw arrival offsets."""
    compat.apply_client_arg_defaults(args)
    requests = _sample(args)
    offsets = arrival_offsets(len(requests), float(args.request_rate), float(args.burstiness))
    return ClientRun(args=args, requests=requests, offsets_s=offsets, goodput=compat.client_goodput(args))
