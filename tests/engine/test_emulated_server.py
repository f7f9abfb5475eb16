"""End to end: vLLM's own server with the emulated device (formula oracle, so timings are checkable)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.server import ServerProcess, ServerSpec

pytestmark = pytest.mark.slow

DECODE_MS = 20.0
PROFILE = f"formula:base_us={DECODE_MS * 1000:.0f},prefill_token_us=10,decode_req_us=0,context_token_us=0"


def _trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("emu")
    trace = tmp / "trace.jsonl"
    spec = ServerSpec(kind="emulated", model="llama-3.1-8b", profile=PROFILE, log_path=tmp / "server.log",
                      vllm_args=("--max-model-len", "2048", "--max-num-batched-tokens", "256", "--max-num-seqs", "64",
                                 "--trace", str(trace)))
    with ServerProcess(spec) as srv:
        yield srv, trace


def _complete(srv: ServerProcess, prompt: object, max_tokens: int, **extra: object) -> dict:
    body = {"model": srv.served_model, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, **extra}
    r = requests.post(f"{srv.base_url}/v1/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.ci_e2e
@pytest.mark.window
def test_completions_chat_streaming_and_metrics(server: tuple[ServerProcess, Path]) -> None:
    srv, _ = server
    out = _complete(srv, "Hello, my name is", 12)
    assert out["usage"]["completion_tokens"] == 12 and out["choices"][0]["text"]
    chat = requests.post(f"{srv.base_url}/v1/chat/completions", timeout=60, json={
        "model": srv.served_model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7,
        "ignore_eos": True}).json()
    assert chat["usage"]["completion_tokens"] == 7
    with requests.post(f"{srv.base_url}/v1/chat/completions", stream=True, timeout=60, json={
            "model": srv.served_model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True)
                  if line and line.startswith("data: {")]
    assert chunks[-1]["usage"]["completion_tokens"] == 9
    metrics = requests.get(f"{srv.base_url}/metrics", timeout=30).text
    assert "vllm:num_requests_running" in metrics and "vllm:generation_tokens_total" in metrics


@pytest.mark.ci_e2e
def test_itl_and_step_durations_match_the_formula(server: tuple[ServerProcess, Path]) -> None:
    """Client-side ITL = the oracle's 20 ms decode step (+ vLLM's own CPU work, which really runs here).

    Tolerance: median ITL within 10 % of 20 ms; device steps exactly as booked; release overshoot mean
    < 1 ms and p99 < 5 ms on a shared 2-core machine.
    """
    srv, trace = server
    body = {"model": srv.served_model, "prompt": "Tell me a story", "max_tokens": 60, "ignore_eos": True,
            "stream": True}
    stamps = []
    with requests.post(f"{srv.base_url}/v1/completions", json=body, stream=True, timeout=120) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data: {"):
                stamps.append(time.perf_counter())
    itl_ms = np.diff(stamps[1:]) * 1e3
    assert len(stamps) >= 55
    assert abs(statistics.median(itl_ms) - DECODE_MS) / DECODE_MS < 0.10, statistics.median(itl_ms)
    steps = _trace(trace)
    decode = [s for s in steps if s["num_prefill_tokens"] == 0]
    assert all(abs(s["latency"] - DECODE_MS / 1e3) < 1e-9 for s in decode)
    assert all(abs((s["end"] - s["start"]) - s["latency"]) < 1e-9 for s in steps)
    late_ms = np.array([s["released"] - s["end"] for s in steps]) * 1e3
    assert late_ms.min() >= 0 and late_ms.mean() < 1.0 and np.percentile(late_ms, 99) < 5.0


@pytest.mark.ci_e2e
@pytest.mark.window
def test_vllm_benchmark_client_against_the_emulator(server: tuple[ServerProcess, Path], tmp_path: Path) -> None:
    """A short run of vLLM's own benchmark client: every request completes with its exact output length.

    Runs after the ITL test, whose release-overshoot bounds cover every step in the trace so far.
    """
    srv, _ = server
    workload = Workload(dataset="random", num_prompts=20, request_rate=20, random_input_len=128,
                        random_output_len=16, ignore_eos=True)
    r = run_benchmark(srv.base_url, srv.served_model, workload, tokenizer_model="llama-3.1-8b", result_dir=tmp_path)
    assert r["completed"] == 20 and r["total_output_tokens"] == 20 * 16
    # 16 decode steps of 20 ms each bound the per-request decode time from below.
    assert r["mean_tpot_ms"] >= DECODE_MS * 0.9 and r["mean_ttft_ms"] > 0


def test_chunked_prefill_and_prefix_hits_reach_the_oracle(server: tuple[ServerProcess, Path]) -> None:
    srv, trace = server
    prompt = [1000 + i for i in range(600)]  # 600 tokens > max_num_batched_tokens 256 -> 3 chunks
    before = len(_trace(trace))
    _complete(srv, prompt, 2)
    first = _trace(trace)[before:]
    chunks = [(s["num_prefill_tokens"], s["prefill_context_tokens"]) for s in first if s["num_prefill_tokens"]]
    assert chunks[:3] == [(256, 0), (256, 256), (88, 512)]
    before = len(_trace(trace))
    _complete(srv, prompt, 2)  # same prompt: vLLM's prefix cache serves all full 16-token blocks
    again = [s for s in _trace(trace)[before:] if s["num_prefill_tokens"]]
    assert again[0]["prefill_context_tokens"] >= 576 and again[0]["num_prefill_tokens"] <= 24


def test_logprobs_are_well_formed(server: tuple[ServerProcess, Path]) -> None:
    srv, _ = server
    lp = _complete(srv, "Hi", 5, logprobs=3)["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == 5 and all(v <= 0 for v in lp["token_logprobs"])
    assert all(1 <= len(top) <= 3 for top in lp["top_logprobs"])


def test_unemulated_request_features_fail_per_request(server: tuple[ServerProcess, Path]) -> None:
    srv, _ = server
    for extra in ({"prompt_logprobs": 1}, {"n": 2}, {"response_format": {"type": "json_object"}}):
        r = requests.post(f"{srv.base_url}/v1/completions", timeout=60, json={
            "model": srv.served_model, "prompt": "x", "max_tokens": 3, **extra})
        assert r.status_code == 400 and "llm-emu" in r.text, (extra, r.text)
    assert _complete(srv, "still serving", 3)["usage"]["completion_tokens"] == 3


@pytest.mark.ci_e2e
def test_kv_pressure_preempts_and_every_request_completes(tmp_path: Path) -> None:
    """80 blocks x 16 tokens for 40 requests x (60 + 300) tokens: vLLM's real scheduler must preempt."""
    spec = ServerSpec(kind="emulated", model="llama-3.1-8b", profile="formula:base_us=2000,prefill_token_us=1",
                      log_path=tmp_path / "server.log",
                      vllm_args=("--max-model-len", "1024", "--num-gpu-blocks-override", "80"))
    with ServerProcess(spec) as srv:
        with ThreadPoolExecutor(40) as pool:
            outs = list(pool.map(lambda i: _complete(srv, [1000 + i] * 60, 300), range(40)))
        metrics = requests.get(f"{srv.base_url}/metrics", timeout=30).text
    assert [o["usage"]["completion_tokens"] for o in outs] == [300] * 40
    preempted = sum(float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith("vllm:num_preemptions_total"))
    assert preempted > 0
