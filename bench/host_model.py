"""Measure the host term of virtual time from wall-clock runs of the emulator on this machine.

Runs `llm-emu serve` (wall clock, step trace on) with vLLM's benchmark client at a light and a loaded rate, then
joins the step trace (launch/release times, which requests started in each step) with the client's per-request
timings (vLLM's client and the emulated worker both stamp CLOCK_MONOTONIC) and fits llm_emu.virtual.HostModel
with ``llm_emu.virtual.hostfit`` (its docstring states what each term is fitted on). The burst run is what
determines api_request_s; the API server's CPU time per run (/proc, idle share taken out; ``api_cpu.json`` in
the workdir) splits its work into api_step_s, api_token_s and api_output_s; the heavy run (32 req/s, many
chunks per step, outputs merged into fewer chunks) is the one that tells them apart. How long the API server's
event loop waited for a core per run (/proc/PID/schedstat, ``api_wait.json``) is printed beside it: on a 2-core
machine the loop competes with the EngineCore and the benchmark client, and that wait is wall time the CPU time
does not show. Last, ``api_request_turns`` is chosen by replaying the busy and heavy runs in virtual time
(``fit_turns``).

Usage: python bench/host_model.py [--profile aic:h100_sxm] [--model llama-3.1-8b] [--out host.json]
       [--workdir DIR] [--refit]  (--refit: fit the runs already in DIR again, e.g. after a model change)
Measure alone (nothing else running): the host term is this machine's CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.lifetime import cpu_seconds, runqueue_seconds
from llm_emu.server import ServerProcess, ServerSpec
from llm_emu.validate.runner import machine_cpu_seconds
from llm_emu.virtual.host import HostModel
from llm_emu.virtual.hostfit import ApiCpu, TracedRun, fit, read_trace

RUNS = (("light", Workload(num_prompts=80, request_rate=1.0, seed=11)),
        ("busy", Workload(num_prompts=300, request_rate=12.0, seed=12)),
        ("burst", Workload(num_prompts=100, request_rate=float("inf"), seed=13)),
        ("heavy", Workload(num_prompts=400, request_rate=32.0, seed=14)))
OPTIONAL = {"heavy"}
"""Runs an older --workdir may lack (--refit fits without them)."""
TURNS = (1, 2, 4, 8, 16, 32)
"""Candidate api_request_turns."""
TURNS_RUNS = ("busy", "heavy")
"""The runs whose mean TTFT fits api_request_turns (loaded: intake waits behind streaming outputs)."""
IDLE_S = 5.0
"""Seconds of an idle server before the runs: the API server's CPU when nothing happens."""


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of the server process ``pid`` so far."""
    cpu = cpu_seconds(pid)
    if cpu is None:
        sys.exit(f"host_model: the server process {pid} is gone; see the server log in --workdir")
    return cpu


def api_cpu_of(res: dict[str, Any], cpu_s: float, steps: list[dict[str, Any]]) -> ApiCpu:
    """The run's API-server CPU with its requests, the chunks the client received and the steps released
    while the run's requests were in flight."""
    ok = [i for i, t in enumerate(res["ttfts"]) if t]
    chunks = sum(1 + len(res["itls"][i]) for i in ok)
    lo = min(res["start_times"])
    hi = max(res["start_times"][i] + res["ttfts"][i] + sum(res["itls"][i]) for i in ok) if ok else lo
    n_steps = sum(1 for s in steps if lo <= s["released"] <= hi)
    tokens = sum(res["output_lens"][i] for i in ok)
    return ApiCpu(cpu_s=cpu_s, requests=len(res["ttfts"]), chunks=chunks, steps=n_steps, tokens=tokens)


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
    cpu_path = work / "api_cpu.json"
    cpu: dict[str, float] = json.loads(cpu_path.read_text()) if a.refit and cpu_path.is_file() else {}
    wait_path = work / "api_wait.json"
    wait: dict[str, float] = json.loads(wait_path.read_text()) if a.refit and wait_path.is_file() else {}
    if not a.refit:
        trace.unlink(missing_ok=True)
        spec = ServerSpec(kind="emulated", model=a.model, profile=a.profile, log_path=work / "server.log",
                          vllm_args=(*a.vllm_args, "--trace", str(trace)))
        with ServerProcess(spec) as server:
            assert server.proc is not None
            pid = server.proc.pid  # `llm-emu serve` execs vLLM's API server: this is its process
            c0 = proc_cpu_s(pid)
            time.sleep(IDLE_S)
            idle = (proc_cpu_s(pid) - c0) / IDLE_S
            for i, (name, wl) in enumerate(RUNS):
                if i:
                    server.reset_prefix_cache()
                c0, t0, w0, m0 = proc_cpu_s(pid), time.monotonic(), runqueue_seconds(pid), machine_cpu_seconds()
                results[name] = run_benchmark(server.base_url, server.served_model, wl, tokenizer_model=a.model,
                                              result_dir=work,
                                              extra_args=("--request-id-prefix", f"hostfit-{name}-"))
                cpu[name] = proc_cpu_s(pid) - c0 - idle * (time.monotonic() - t0)
                w1 = runqueue_seconds(pid)
                if w0 is not None and w1 is not None:
                    wait[name] = w1 - w0
                busy, steal = (b - a for a, b in zip(m0, machine_cpu_seconds(), strict=True))
                span = time.monotonic() - t0
                print(f"{name}: the machine's cores were {100 * busy / (span * (os.cpu_count() or 1)):.0f} % busy "
                      f"over {span:.1f} s (steal {steal:.1f} s)", file=sys.stderr)
        cpu_path.write_text(json.dumps(cpu, indent=2) + "\n")
        wait_path.write_text(json.dumps(wait, indent=2) + "\n")
    steps = read_trace(trace)
    async_sched = "--no-async-scheduling" not in a.vllm_args
    api = {name: api_cpu_of(results[name], cpu[name], steps) for name in cpu if name in results}
    for name, x in api.items():
        print(f"{name}: API server {x.cpu_s:.2f} CPU s, {x.requests} requests, {x.tokens} outputs, {x.chunks} chunks, "
              f"{x.steps} steps "
              f"({x.chunks / max(x.steps, 1):.1f} chunks/step)"
              + (f"; its event loop waited {wait[name]:.2f} s for a core" if name in wait else ""), file=sys.stderr)
    model = fit(steps, traced_runs(results), async_sched, api_cpu=list(api.values()))
    model = replace(model, api_request_turns=fit_turns(model, results, a.profile, a.model, a.vllm_args))
    model = replace(model, source=f"bench/host_model.py on {time.strftime('%Y-%m-%d')}, profile {a.profile}, "
                                  f"{len(steps)} steps, {_cpu()}")
    Path(a.out).write_text(model.to_json() + "\n")
    print(model.to_json())
    return 0


def fit_turns(model: HostModel, results: dict[str, dict[str, Any]], profile: str, served: str,
              vllm_args: list[str]) -> int:
    """``api_request_turns``: the value in TURNS whose virtual-time replay of the loaded runs (TURNS_RUNS, same
    workloads) comes closest to their measured mean TTFT (sum of squared relative errors). Every other term is
    fitted first; the turns are what the loaded runs' TTFT needs beyond a first-come first-served intake."""
    from llm_emu.virtual import VirtualCell, run_virtual_cells

    names = [n for n in TURNS_RUNS if n in results]
    if not names:
        return model.api_request_turns
    cells = [VirtualCell(wl) for n, wl in RUNS if n in names]
    measured = [results[n]["mean_ttft_ms"] for n in names]
    best, best_err = model.api_request_turns, float("inf")
    for turns in TURNS:
        got = run_virtual_cells(served, profile, vllm_args, cells, host=replace(model, api_request_turns=turns))
        errs = [100 * (g["mean_ttft_ms"] - m) / m for g, m in zip(got, measured, strict=True)]
        err = sum(e * e for e in errs)
        print(f"api_request_turns {turns}: virtual vs measured mean TTFT " + ", ".join(
            f"{n} {e:+.1f} %" for n, e in zip(names, errs, strict=True)), file=sys.stderr, flush=True)
        if err < best_err:
            best, best_err = turns, err
    return best


def _saved_results(work: Path) -> dict[str, dict[str, Any]]:
    """The benchmark JSON of each run in RUNS found in ``work`` (the newest per request rate)."""
    out = {}
    for name, wl in RUNS:
        found = sorted(work.glob(f"vllm-bench-*-{wl.request_rate:g}qps-*.json"))
        if not found and name in OPTIONAL:
            continue
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
