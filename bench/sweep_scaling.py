"""Sweep wall time with 1 vs 2 Ray CPUs for the same spec, and whether packed servers disturb each other.

Runs the same small sweep (4 configs x 1 rate, emulated H100) twice through `llm-emu sweep`: once on a 1-CPU
local Ray cluster (trials one at a time), once on 2 CPUs (two emulated servers at once, 1 CPU each). Prints the
wall times, the scaling efficiency (speed-up / 2), and for every trial the % difference of its latency metrics
packed vs alone — measured side by side in one run.

Usage: python bench/sweep_scaling.py [--out runs/scaling] [--num-prompts 60] [--rate 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

SPEC = """\
name: scaling
model: llama-3.1-8b
profile: aic:h100_sxm
engine_args: {{max_model_len: 4096}}
grid:
  max_num_seqs: [32, 64, 128, 256]
workload: {{dataset: sharegpt, num_prompts: {n}, request_rates: [{rate}], seed: 0}}
slo: {{ttft_ms: 500, tpot_ms: 50, attainment: 0.95}}
resources: {{cpus_per_trial: 1, max_parallel: 2}}
"""
METRICS = ["mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "output_throughput"]


def run(spec: Path, out: Path, cpus: int) -> float:
    """Wall seconds of one `llm-emu sweep` with a local Ray cluster of ``cpus`` CPUs."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "llm_emu.cli", "sweep", str(spec), "-o", str(out), "--no-resume",
                    "--num-cpus", str(cpus), "--max-parallel", str(cpus), "--no-report", "--no-progress"],
                   check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/scaling"))
    ap.add_argument("--num-prompts", type=int, default=60)
    ap.add_argument("--rate", type=float, default=8.0)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    spec = a.out / "scaling.yaml"
    spec.write_text(SPEC.format(n=a.num_prompts, rate=a.rate))
    walls = {cpus: run(spec, a.out / f"cpus{cpus}", cpus) for cpus in (1, 2)}
    speedup = walls[1] / walls[2]
    print(f"\nwall 1 CPU: {walls[1]:.0f} s | 2 CPUs: {walls[2]:.0f} s | speed-up {speedup:.2f}x | "
          f"scaling efficiency {speedup / 2:.0%}")
    alone = pd.read_parquet(a.out / "cpus1" / "results.parquet").set_index("trial_hash")
    packed = pd.read_parquet(a.out / "cpus2" / "results.parquet").set_index("trial_hash")
    diff = (packed[METRICS] - alone[METRICS]) / alone[METRICS] * 100
    diff.insert(0, "max_num_seqs", alone["engine.max_num_seqs"])
    print("\n% difference, packed (2 servers at once) vs alone, per trial:")
    print(diff.round(1).to_string(index=False))
    print("\nmean |difference| per metric (%):")
    print(diff[METRICS].abs().mean().round(1).to_string())


if __name__ == "__main__":
    main()
