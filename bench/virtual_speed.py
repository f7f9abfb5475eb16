"""Wall-clock vs virtual-time cost of the same sweep cells, measured side by side in one run.

Runs `llm-emu sweep SPEC --clock wall` and `--clock virtual` on the same spec (fresh output directories, no
report), times each command end to end, and prints per cell the trial's own elapsed time in both clocks, their
ratio, and the metrics both produced (mean TTFT / TPOT / E2EL), so the speed-up is read next to the agreement.
A second spec, one config at 1 req/s, shows the light-load cell where wall clock mostly waits for arrivals.

Usage:
  python bench/virtual_speed.py [--spec sweeps/chunked_prefill.yaml] [--light-prompts 100] [--out DIR]
Measure alone (nothing else running): both sides are timed on this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

METRICS = ("mean_ttft_ms", "mean_tpot_ms", "mean_e2el_ms", "p99_ttft_ms")


def _sweep(spec: Path, out: Path, clock: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "llm_emu.cli", "sweep", str(spec), "-o", str(out), "--clock", clock,
           "--no-report", "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - t0
    (out.parent / f"{out.name}.log").write_text(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"virtual_speed: `{' '.join(cmd)}` exited {proc.returncode}; see {out.parent / out.name}.log")
    return elapsed


def _cells(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "results.parquet")
    df = df[df["status"] == "ok"].copy()
    df["cell"] = df["config"].astype(str) + " @ " + df["request_rate"].astype(str)
    return df.set_index("cell")


def _light_spec(spec: Path, prompts: int, dest: Path) -> Path:
    data = yaml.safe_load(spec.read_text())
    data["name"] = data["name"] + "_1rps"
    data.pop("grid", None)
    data["workload"]["request_rates"] = [1]
    data["workload"]["num_prompts"] = prompts
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def compare(label: str, spec: Path, out: Path) -> tuple[float, float]:
    wall_s = _sweep(spec, out / "wall", "wall")
    virt_s = _sweep(spec, out / "virtual", "virtual")
    wall, virt = _cells(out / "wall"), _cells(out / "virtual")
    print(f"\n## {label}: {spec}")
    print(f"command wall time: wall clock {wall_s:.1f} s, virtual {virt_s:.1f} s -> {wall_s / virt_s:.1f}x")
    print("| cell | trial s (wall) | trial s (virtual) | metric | wall | virtual | diff % |")
    print("|---|---|---|---|---|---|---|")
    # A trial runs every rate of a config, so its elapsed time is per config; metrics are per (config, rate).
    for cell in wall.index:
        if cell not in virt.index:
            print(f"| {cell} | missing in virtual run |")
            continue
        w, v = wall.loc[cell], virt.loc[cell]
        for i, m in enumerate(METRICS):
            head = (f"| {cell} | {w['trial_elapsed_s']:.1f} | {v['trial_elapsed_s']:.1f} " if i == 0
                    else "| | | ")
            print(f"{head}| {m} | {w[m]:.2f} | {v[m]:.2f} | {100 * (v[m] - w[m]) / w[m]:+.1f} |")
    return wall_s, virt_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, default=Path("sweeps/chunked_prefill.yaml"))
    p.add_argument("--light-prompts", type=int, default=100, help="prompts of the 1 req/s cell (0: skip it)")
    p.add_argument("--out", type=Path, default=Path("/tmp/llm-emu-virtual-speed"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"uptime before: {os.getloadavg()}")
    results = {"sweep": compare("sweep", args.spec, args.out / "sweep")}
    if args.light_prompts:
        light = _light_spec(args.spec, args.light_prompts, args.out / "light.yaml")
        results["1 req/s"] = compare(f"one config at 1 req/s, {args.light_prompts} prompts", light,
                                     args.out / "light")
    print("\n| run | wall clock s | virtual s | speed-up |")
    print("|---|---|---|---|")
    for name, (w, v) in results.items():
        print(f"| {name} | {w:.1f} | {v:.1f} | {w / v:.1f}x |")
    print(f"uptime after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
