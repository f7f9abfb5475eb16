"""What the emulator adds on top of vLLM's own engine loop, and how exactly it keeps step durations.

For each profile (a fixed-latency formula and the aic H100 estimate) it starts one emulated server with a
step trace, drives it with vLLM's own benchmark client at 64 and 256 concurrent requests, and reports from
the trace:

* worker CPU per step: time spent in the emulated worker (batch mirror, features, oracle, synthetic output);
* vLLM engine CPU per step: in a sync engine, the gap between a step's release and the next launch;
* step-duration error: released - booked end (sleep overshoot), mean and p99.

Usage: python bench/overhead.py [--num-prompts 512] [--out runs/overhead]
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

import numpy as np

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.server import ServerProcess, ServerSpec

PROFILES = {
    "formula (15 ms/step)": "formula:base_us=15000,prefill_token_us=5,decode_req_us=10,context_token_us=0",
    "aic:h100_sxm": "aic:h100_sxm",
}


def summarise(records: list[dict], sync: bool) -> dict[str, float]:
    """Per-step figures (ms) from a step trace."""
    cpu = np.array([r["worker_cpu"] for r in records]) * 1e3
    late = np.array([r["released"] - r["end"] for r in records]) * 1e3
    running = np.array([r["num_decode_reqs"] + r["num_prefill_reqs"] for r in records])
    out = {
        "steps": float(len(records)),
        "mean_running": float(running.mean()),
        "worker_cpu_mean_ms": float(cpu.mean()),
        "worker_cpu_p99_ms": float(np.percentile(cpu, 99)),
        "step_err_mean_ms": float(late.mean()),
        "step_err_p99_ms": float(np.percentile(late, 99)),
    }
    if sync:
        gaps = np.array([b["launched"] - a["released"] for a, b in pairwise(records)]) * 1e3
        out["engine_cpu_mean_ms"] = float(np.median(gaps[gaps >= 0]))
    return out


def run(profile: str, concurrency: list[int], num_prompts: int, out: Path, sync: bool) -> dict[int, dict]:
    out.mkdir(parents=True, exist_ok=True)
    trace = out / "trace.jsonl"
    trace.unlink(missing_ok=True)
    args = ["--max-model-len", "2048", "--trace", str(trace)] + (["--no-async-scheduling"] if sync else [])
    spec = ServerSpec(kind="emulated", model="llama-3.1-8b", profile=profile, vllm_args=tuple(args),
                      log_path=out / "server.log")
    results: dict[int, dict] = {}
    with ServerProcess(spec) as srv:
        for conc in concurrency:
            start = len(trace.read_text().splitlines()) if trace.exists() else 0
            wl = Workload(dataset="random", num_prompts=num_prompts, random_input_len=128, random_output_len=256,
                          max_concurrency=conc, seed=0)
            bench = run_benchmark(srv.base_url, srv.served_model, wl, tokenizer_model="llama-3.1-8b",
                                  result_dir=out)
            lines = trace.read_text().splitlines()[start:]
            records = [json.loads(x) for x in lines if x.strip()]
            steady = [r for r in records if r["num_decode_reqs"] + r["num_prefill_reqs"] >= 0.9 * conc]
            results[conc] = {**summarise(steady or records, sync), "output_throughput": bench["output_throughput"]}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-prompts", type=int, default=512)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--out", type=Path, default=Path("runs/overhead"))
    ap.add_argument("--sync", action="store_true", help="also measure vLLM's engine CPU per step (sync engine)")
    a = ap.parse_args()
    rows = []
    for name, profile in PROFILES.items():
        for sync in ([False, True] if a.sync else [False]):
            res = run(profile, a.concurrency, a.num_prompts, a.out / name.split()[0].replace(":", "_"), sync)
            for conc, r in res.items():
                rows.append((name + (" sync" if sync else " async"), conc, r))
    print("| profile | running | steps | worker CPU/step mean (p99) ms | step error mean (p99) ms |"
          " vLLM engine CPU/step ms | worker/engine |")
    print("|---|---|---|---|---|---|---|")
    for name, conc, r in rows:
        eng = r.get("engine_cpu_mean_ms")
        ratio = f"{r['worker_cpu_mean_ms'] / eng:.2f}" if eng else "-"
        print(f"| {name} | {conc} (mean {r['mean_running']:.0f}) | {r['steps']:.0f} | "
              f"{r['worker_cpu_mean_ms']:.3f} ({r['worker_cpu_p99_ms']:.3f}) | "
              f"{r['step_err_mean_ms']:.3f} ({r['step_err_p99_ms']:.3f}) | "
              f"{'-' if eng is None else f'{eng:.2f}'} | {ratio} |")


if __name__ == "__main__":
    main()
