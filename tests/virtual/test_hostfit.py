"""The host-model fit recovers known host terms from a step trace + client timings of a simulated engine."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_emu.profile.features import StepFeatures
from llm_emu.virtual.host import HostModel
from llm_emu.virtual.hostfit import ApiCpu, TracedRun, api_costs, fit, from_validation, overlapped

TRUE = HostModel(step_base_s=4e-4, step_per_req_s=3e-5, request_in_s=5e-3, request_in_per_token_s=2e-6,
                 output_s=1.2e-3, api_output_s=2e-4, api_step_s=8e-4)
BASE = HostModel(api_request_s=7e-3, step_base_s=9.0, api_step_s=TRUE.api_step_s, source="base")


def simulate(prefix: str, t0: float, n: int, seed: int, latency: float = 4e-3,
             true: HostModel | None = None) -> tuple[list[dict], dict]:
    """A sync engine with host cost TRUE: its step trace and vLLM-client-like result (start_times, ttfts).

    With ``true`` (a host model with API-server costs), a new request's first chunk also waits for an API server
    that serves, first come first served, each request sent (``api_request_s``) and each step's outputs
    (``api_step_s`` + ``api_token_s`` + ``api_output_s`` per request in the step)."""
    rng = np.random.default_rng(seed)
    starts = t0 + np.cumsum(rng.exponential(0.05, n))  # busy at times, idle at others
    plens = rng.integers(10, 400, n)
    olens = rng.integers(2, 30, n)
    ready = sorted((s + TRUE.request_in(int(p)), i) for i, (s, p) in enumerate(zip(starts, plens, strict=True)))
    steps: list[dict] = []
    ttfts = [0.0] * n
    running: dict[int, int] = {}
    t, k = t0, 0
    while k < n or running:
        if not running and ready[k][0] > t:
            t = ready[k][0]
        new = []
        while k < n and ready[k][0] <= t:
            new.append(ready[k][1])
            k += 1
        f = StepFeatures(num_prefill_tokens=int(sum(plens[i] for i in new)), num_prefill_reqs=len(new),
                         num_decode_reqs=len(running), decode_context_tokens=50 * len(running))
        launched = t + TRUE.step_cost(f)
        released = launched + latency
        steps.append({**asdict(f), "launched": launched, "released": released,
                      "new_req_ids": [f"cmpl-{prefix}-{i}-0-1a2b3c4d" for i in new]})
        for i in new:
            ttfts[i] = released + TRUE.api_step_s + TRUE.api_output_s * f.num_reqs + TRUE.output_s - starts[i]
        running = {i: m - 1 for i, m in running.items() if m > 1}
        running.update({i: int(olens[i]) for i in new})
        t = released
    if true is not None:
        ttfts = _queued_ttfts(steps, starts, prefix, true)
    return steps, {"start_times": starts.tolist(), "ttfts": ttfts, "input_lens": plens.tolist()}


def _queued_ttfts(steps: list[dict], starts: np.ndarray, prefix: str, true: HostModel) -> list[float]:
    ttfts = [0.0] * len(starts)
    free, k = -np.inf, 0
    for s in steps:
        while k < len(starts) and starts[k] <= s["released"]:  # requests sent before this output
            free = max(free, starts[k]) + true.api_request_s
            k += 1
        nreqs = s["num_prefill_reqs"] + s["num_decode_reqs"]
        free = max(free, s["released"]) + true.api_step_s + (true.api_token_s + true.api_output_s) * nreqs
        for rid in s["new_req_ids"]:  # new requests are the step's last outputs
            i = int(rid.split(f"{prefix}-")[1].split("-")[0])
            ttfts[i] = free + true.output_s - starts[i]
    return ttfts


def _close(fitted: HostModel, names: list[str]) -> None:
    for name in names:
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.02, abs=1e-7), name


def test_fit_recovers_the_host_terms_of_a_simulated_engine() -> None:
    steps, result = simulate("bench-0123abcd", 100.0, 300, seed=1)
    assert not overlapped(steps)
    fitted = fit(steps, [TracedRun("bench-0123abcd", result)], async_sched=False, base=BASE)
    _close(fitted, ["step_base_s", "step_per_req_s", "request_in_s", "request_in_per_token_s", "output_s",
                    "api_output_s"])
    assert fitted.api_request_s == BASE.api_request_s  # no burst: not determined, the base's value stays
    assert fitted.api_step_s == BASE.api_step_s  # kept from the base and not counted again in output_s


def _api_cpu(requests: int, steps: int, chunks: int, tokens: int | None = None, true: HostModel = TRUE) -> ApiCpu:
    tokens = chunks if tokens is None else tokens  # by default no output merged into another's chunk
    cpu = (true.api_request_s * requests + true.api_step_s * steps + true.api_token_s * tokens
           + true.api_output_s * chunks)
    return ApiCpu(cpu_s=cpu, requests=requests, chunks=chunks, steps=steps, tokens=tokens)


def test_api_cpu_splits_into_per_step_and_per_chunk_costs() -> None:
    runs = [_api_cpu(80, 10_000, 20_000), _api_cpu(300, 4_000, 65_000), _api_cpu(400, 3_000, 90_000)]
    # no run merged outputs: outputs and chunks are one cost, per chunk
    assert api_costs(runs, TRUE.api_request_s) == pytest.approx((TRUE.api_step_s, 0.0, TRUE.api_output_s))
    # one chunks-per-step ratio cannot separate them: all of it per chunk
    step, token, chunk = api_costs([_api_cpu(80, 1_000, 2_000), _api_cpu(160, 2_000, 4_000)], TRUE.api_request_s)
    assert step == token == 0.0
    assert chunk == pytest.approx(TRUE.api_output_s + TRUE.api_step_s / 2)


def test_api_cpu_separates_request_outputs_from_chunks_when_a_run_merged_them() -> None:
    true = replace(TRUE, api_request_s=3e-3, api_step_s=1e-3, api_token_s=9e-5, api_output_s=5e-5)
    # the shape of bench/host_model.py's four runs: light, busy, burst, heavy (outputs merged 2.5:1)
    runs = [_api_cpu(80, 10_112, 20_587, 20_861, true), _api_cpu(300, 4_317, 64_273, 65_258, true),
            _api_cpu(100, 1_823, 18_172, 24_915, true), _api_cpu(400, 2_380, 38_525, 95_856, true)]
    assert api_costs(runs, true.api_request_s) == pytest.approx((true.api_step_s, true.api_token_s,
                                                                 true.api_output_s))


def test_fit_with_api_cpu_takes_the_split_and_leaves_output_s_the_rest() -> None:
    steps, result = simulate("bench-0123abcd", 100.0, 300, seed=5)
    cpu = [_api_cpu(80, 10_000, 20_000), _api_cpu(300, 4_000, 65_000)]
    fitted = fit(steps, [TracedRun("bench-0123abcd", result)], async_sched=False, api_cpu=cpu)
    _close(fitted, ["api_step_s", "api_output_s", "output_s"])


def test_output_s_is_not_the_api_servers_queue() -> None:
    # a slow API server: loaded stretches queue each step's outputs behind the previous ones
    true = replace(TRUE, api_request_s=2e-3, api_step_s=2e-3, api_output_s=1.5e-3, output_s=1e-3)
    steps, result = simulate("bench-0123abcd", 100.0, 300, seed=6, true=true)
    cpu = [ApiCpu(cpu_s=true.api_request_s * r + true.api_step_s * st + true.api_output_s * c, requests=r,
                  steps=st, chunks=c) for r, st, c in ((80, 10_000, 20_000), (300, 4_000, 65_000))]
    fitted = fit(steps, [TracedRun("bench-0123abcd", result)], async_sched=False, base=true, api_cpu=cpu)
    assert fitted.output_s == pytest.approx(true.output_s, rel=0.02)
    # the queue is real in this trace: charging only the step's own work would count it as output_s
    queued = np.mean([result["start_times"][i] + result["ttfts"][i] - s["released"] - true.api_step_s
                      - true.api_output_s * (s["num_prefill_reqs"] + s["num_decode_reqs"])
                      for s in steps for i in (int(r.split("-")[3]) for r in s["new_req_ids"])])
    assert queued > 1.5 * true.output_s


def test_the_async_lag_reads_other_gaps() -> None:
    # the sync trace fitted as if async (gap to the step before last) would include a device latency
    steps, result = simulate("bench-0123abcd", 0.0, 200, seed=2)
    wrong = fit(steps, [TracedRun("bench-0123abcd", result)], async_sched=True)
    assert wrong.step_base_s > 2 * TRUE.step_base_s


def test_from_validation_joins_each_emulated_run_by_its_window(tmp_path: Path) -> None:
    runs = [simulate("bench-0000aaaa", 10.0, 150, seed=3), simulate("bench-1111bbbb", 500.0, 150, seed=4)]
    (tmp_path / "bench" / "emulated").mkdir(parents=True)
    rows = []
    with open(tmp_path / "emulated-steps.jsonl", "w") as f:
        for j, (steps, result) in enumerate(runs):
            for s in steps:
                f.write(json.dumps(s) + "\n")
            (tmp_path / "bench" / "emulated" / f"run{j}.json").write_text(json.dumps(result))
            rows.append({"kind": "emulated", "rate": 20.0, "burstiness": 1.0, "repeat": 0, "run": j,
                         "t_mono_start": result["start_times"][0] - 0.01, "t_mono_end": steps[-1]["released"] + 1})
    rows.append({"kind": "real", "rate": 20.0, "burstiness": 1.0, "repeat": 0, "run": 0, "t_mono_start": 0.0,
                 "t_mono_end": 1e9})
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    fitted = from_validation(tmp_path, BASE)
    _close(fitted, [f.name for f in fields(HostModel) if f.name not in ("source", "api_request_s",
                                                                           "step_per_token_s")])
    assert "2 emulated runs" in fitted.source
