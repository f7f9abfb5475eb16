"""Measure the host term of virtual time from wall-clock runs of the emulator on this machine.

Runs `llm-emu serve` (wall clock, step trace on) with vLLM's benchmark client at a light and a loaded rate, then
joins the step trace (launch/release times, which requests started in each step) with the client's per-request
timings (vLLM's client and the emulated worker both stamp CLOCK_MONOTONIC) and fits llm_emu.virtual.HostModel:

* step_*: EngineCore CPU between the output of step k-2 (async; k-1 sync) and the launch of step k,
  least squares on (1, scheduled requests, prefill tokens), from steps of a continuously busy engine;
* request_in_*: client send -> launch of the request's first step, minus that step's CPU, for requests that
  reached an idle engine, least squares on (1, prompt tokens);
* output_s, api_output_s: the request's first chunk at the client minus the release of the step that produced
  it, least squares on (1, requests in that step): the API server streams a step's chunks one at a time and a
  new request's is the last of its step;
* api_request_s: a burst (all requests at once): the span over which it entered the scheduler, less the chunks
  streamed meanwhile, per request.

Usage: python bench/host_model.py [--profile aic:h100_sxm] [--model llama-3.1-8b] [--out host.json]
       [--workdir DIR] [--refit]  (--refit: fit the runs already in DIR again, e.g. after a model change)
Measure alone (nothing else running): the host term is this machine's CPU time.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.profile.features import StepFeatures
from llm_emu.server import ServerProcess, ServerSpec
from llm_emu.virtual.host import HostModel

RUNS = (("light", Workload(num_prompts=80, request_rate=1.0, seed=11)),
        ("busy", Workload(num_prompts=300, request_rate=12.0, seed=12)),
        ("burst", Workload(num_prompts=100, request_rate=float("inf"), seed=13)))
ID = re.compile(r"hostfit-(\w+)-(\d+)")


def _trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_costs(steps: list[dict[str, Any]], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(design rows [1, reqs, tokens], engine CPU seconds) for steps launched while the engine was busy."""
    rows, ys = [], []
    for k in range(lag, len(steps)):
        s, prev = steps[k], steps[k - lag]
        gap = s["launched"] - prev["released"]
        if not 0 < gap < 0.05 or s.get("new_req_ids"):  # idle in between, or a new arrival's input work
            continue
        rows.append([1.0, _features(s).num_reqs, s["num_prefill_tokens"]])
        ys.append(gap)
    return np.asarray(rows), np.asarray(ys)


def _features(s: dict[str, Any]) -> StepFeatures:
    """The batch composition of a traced step (the trace records every StepFeatures field)."""
    return StepFeatures(**{f.name: s[f.name] for f in fields(StepFeatures)})


def first_steps(steps: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(run, request index) -> the step in which that request was first scheduled."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for s in steps:
        for rid in s.get("new_req_ids", []):
            m = ID.search(rid)
            if m:
                out.setdefault((m.group(1), int(m.group(2))), s)
    return out


def fit(steps: list[dict[str, Any]], results: dict[str, dict[str, Any]], async_sched: bool) -> HostModel:
    x, y = step_costs(steps, lag=2 if async_sched else 1)
    coef = np.linalg.lstsq(x, y, rcond=None)[0] if len(y) >= 3 else np.zeros(3)
    step = HostModel(step_base_s=max(0.0, float(coef[0])), step_per_req_s=max(0.0, float(coef[1])),
                     step_per_token_s=max(0.0, float(coef[2])))
    first = first_steps(steps)
    launches = sorted((s["launched"], s["released"]) for s in steps)
    ins, lens, outs, out_reqs = [], [], [], []
    for run, res in results.items():
        for i, (start, ttft, plen) in enumerate(zip(res["start_times"], res["ttfts"], res["input_lens"], strict=True)):
            s = first.get((run, i))
            if s is None or not ttft:
                continue
            # the request's first token is the last output of its first step (the engine lists new requests last),
            # so it left the API server behind every other output of that step
            outs.append(start + ttft - s["released"])
            out_reqs.append(_features(s).num_reqs)
            if run != "burst" and not any(lo <= start <= hi for lo, hi in launches):
                ins.append(s["launched"] - start - step.step_cost(_features(s)))
                lens.append(plen)
    c = (np.linalg.lstsq(np.column_stack([np.ones(len(ins)), lens]), np.asarray(ins), rcond=None)[0]
         if len(ins) >= 3 else np.zeros(2))
    o = (np.linalg.lstsq(np.column_stack([np.ones(len(outs)), out_reqs]), np.asarray(outs), rcond=None)[0]
         if len(outs) >= 3 else np.zeros(2))
    model = replace(step, request_in_s=max(0.0, float(c[0])), request_in_per_token_s=max(0.0, float(c[1])),
                    output_s=max(0.0, float(o[0])), api_output_s=max(0.0, float(o[1])))
    return replace(model, api_request_s=burst_intake(steps, results.get("burst"), first, model))


def burst_intake(steps: list[dict[str, Any]], burst: dict[str, Any] | None,
                 first: dict[tuple[str, int], dict[str, Any]], model: HostModel) -> float:
    """API-server time per request, from a burst (every request sent at once): the span over which the burst
    entered the scheduler, less the chunks the API server streamed meanwhile, divided by the requests."""
    if not burst:
        return 0.0
    firsts = sorted(first[("burst", i)]["launched"] for i in range(len(burst["ttfts"])) if ("burst", i) in first)
    if len(firsts) < 10:
        return 0.0
    launched = sorted(s["launched"] for s in steps)
    k = bisect.bisect_left(launched, firsts[-1])
    # the last request entered the scheduler between the launch before its first step and that step's launch
    last_seen = (launched[k - 1] + firsts[-1]) / 2 if k else firsts[-1]
    span = last_seen - firsts[0]
    chunks = sum(_features(s).num_reqs for s in steps
                 if firsts[0] <= s["released"] < last_seen)
    return max(0.0, (span - chunks * model.api_output_s) / (len(firsts) - 1))

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="aic:h100_sxm")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--out", default="host_model.json")
    p.add_argument("--workdir", default="/tmp/llm-emu-host-model")
    p.add_argument("vllm_args", nargs="*", default=["--max-model-len", "4096"])
    p.add_argument("--refit", action="store_true",
                   help="fit again from the runs already in --workdir (trace + benchmark JSON) without running")
    a = p.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    trace = work / "trace.jsonl"
    results = _saved_results(work) if a.refit else {}
    if not a.refit:
        trace.unlink(missing_ok=True)
        spec = ServerSpec(kind="emulated", model=a.model, profile=a.profile, log_path=work / "server.log",
                          vllm_args=(*a.vllm_args, "--trace", str(trace)))
        with ServerProcess(spec) as server:
            for i, (name, wl) in enumerate(RUNS):
                if i:
                    server.reset_prefix_cache()
                results[name] = run_benchmark(server.base_url, server.served_model, wl, tokenizer_model=a.model,
                                              result_dir=work,
                                              extra_args=("--request-id-prefix", f"hostfit-{name}-"))
    steps = _trace(trace)
    async_sched = "--no-async-scheduling" not in a.vllm_args
    model = fit(steps, results, async_sched)
    model = replace(model, source=f"bench/host_model.py on {time.strftime('%Y-%m-%d')}, profile {a.profile}, "
                                  f"{len(steps)} steps, {_cpu()}")
    Path(a.out).write_text(model.to_json() + "\n")
    print(model.to_json())
    return 0


def _saved_results(work: Path) -> dict[str, dict[str, Any]]:
    """The benchmark JSON of each run in RUNS found in ``work`` (the newest per request rate)."""
    out = {}
    for name, wl in RUNS:
        found = sorted(work.glob(f"vllm-bench-*-{wl.request_rate:g}qps-*.json"))
        if not found or not (work / "trace.jsonl").is_file():
            sys.exit(f"host_model: --refit needs {work}/trace.jsonl and the {name} run's benchmark JSON; "
                     "run once without --refit")
        out[name] = json.loads(found[-1].read_text())
    return out


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
