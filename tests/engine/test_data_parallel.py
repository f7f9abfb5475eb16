"""End to end: vLLM's own data-parallel path with emulated workers, each standing for TP 2 x PP 2 GPUs.

One server: ``-dp 2 -tp 2 -pp 2``. vLLM starts two engine cores and its DP coordinator; its front end spreads
the requests. The step trace carries each engine core's replica (``dp_rank``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from llm_emu.server import ServerProcess, ServerSpec

pytestmark = pytest.mark.slow

STEP_MS = 20.0
N_REQUESTS, PROMPT, TOKENS = 16, 600, 24


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("dp")
    trace = tmp / "trace.jsonl"
    spec = ServerSpec(kind="emulated", model="tiny-llama", profile=f"formula:base_us={STEP_MS * 1000:.0f}",
                      log_path=tmp / "server.log",
                      vllm_args=("--data-parallel-size", "2", "-tp", "2", "-pp", "2", "--max-model-len", "2048",
                                 "--max-num-batched-tokens", "1024", "--num-gpu-blocks-override", "4096",
                                 "--trace", str(trace)))
    with ServerProcess(spec) as srv:
        yield srv, trace


def _complete(srv: ServerProcess, i: int) -> int:
    body = {"model": srv.served_model, "prompt": [1000 + i + j for j in range(PROMPT)], "max_tokens": TOKENS,
            "ignore_eos": True}
    r = requests.post(f"{srv.base_url}/v1/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return int(r.json()["usage"]["completion_tokens"])


def _per_engine(metrics: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in re.finditer(rf'^{name}\{{[^}}]*engine="(\d+)"[^}}]*\}} ([\d.e+]+)$', metrics, re.MULTILINE):
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


@pytest.mark.ci_e2e
def test_every_replica_gets_work_and_totals_match(server: tuple[ServerProcess, Path]) -> None:
    srv, trace = server
    with ThreadPoolExecutor(N_REQUESTS) as pool:
        tokens = list(pool.map(lambda i: _complete(srv, i), range(N_REQUESTS)))
    assert tokens == [TOKENS] * N_REQUESTS
    metrics = requests.get(f"{srv.base_url}/metrics", timeout=30).text
    done = _per_engine(metrics, "vllm:request_success_total")
    generated = _per_engine(metrics, "vllm:generation_tokens_total")
    assert sorted(done) == ["0", "1"] and all(v > 0 for v in done.values()), done
    assert sum(done.values()) == N_REQUESTS and sum(generated.values()) == N_REQUESTS * TOKENS
    steps = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {s["dp_rank"] for s in steps} == {0, 1}


def test_pipeline_stages_overlap_micro_batches(server: tuple[ServerProcess, Path]) -> None:
    """PP 2: vLLM keeps two micro-batches in flight; the next one enters stage 0 when the previous left it."""
    srv, trace = server
    steps = [json.loads(line) for line in trace.read_text().splitlines()]
    if not steps:  # run alone: make some traffic first
        with ThreadPoolExecutor(N_REQUESTS) as pool:
            list(pool.map(lambda i: _complete(srv, i), range(N_REQUESTS)))
        steps = [json.loads(line) for line in trace.read_text().splitlines()]
    for rank in (0, 1):
        mine = [s for s in steps if s["dp_rank"] == rank]
        overlapping = [b for a, b in itertools.pairwise(mine) if b["start"] < a["end"] - 1e-4]
        assert overlapping, f"replica {rank}: no two steps were ever in the pipeline together"
        # A step never leaves the pipeline before its own latency, nor enters stage 0 before the previous left it.
        assert all(s["end"] - s["start"] >= s["latency"] - 1e-9 for s in mine)
        assert all(b["start"] >= a["start"] + a["latency"] / 2 - 1e-9 for a, b in itertools.pairwise(mine))
