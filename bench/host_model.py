"""Measure the host term of virtual time from wall-clock runs of the emulator on this machine.

Runs `llm-emu serve` (wall clock, step trace on) with vLLM's benchmark client at a light and a loaded rate, then
joins the step trace (launch/release times, which requests started in each step) with the client's per-request
timings (vLLM's client and the emulated worker both stamp CLOCK_MONOTONIC) and fits llm_emu.virtual.HostModel
with ``llm_emu.virtual.hostfit`` (its docstring states what each term is fitted on). The burst run is what
determines api_request_s.

Usage: python bench/host_model.py [--profile aic:h100_sxm] [--model llama-3.1-8b] [--out host.json]
       [--workdir DIR] [--refit]  (--refit: fit the runs already in DIR again, e.g. after a model change)
Measure alone (nothing else running): the host term is this machine's CPU time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.server import ServerProcess, ServerSpec
from llm_emu.virtual.hostfit import TracedRun, fit, read_trace

RUNS = (("light", Workload(num_prompts=80, request_rate=1.0, seed=11)),
        ("busy", Workload(num_prompts=300, request_rate=12.0, seed=12)),
        ("burst", Workload(num_prompts=100, request_rate=float("inf"), seed=13)))


def traced_runs(results: dict[str, dict[str, Any]]) -> list[TracedRun]:
    """The runs of RUNS with their request-id prefixes (``hostfit-<name>-``)."""
    return [TracedRun(f"hostfit-{name}", res, burst=name == "burst") for name, res in results.items()]


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
    steps = read_trace(trace)
    async_sched = "--no-async-scheduling" not in a.vllm_args
    model = fit(steps, traced_runs(results), async_sched)
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
