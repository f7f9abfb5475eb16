"""Virtual time vs wall clock on the same profile and workload: signed % errors and wall time per cell.

The wall side is `llm-emu serve` driven by vLLM's benchmark client; the virtual side is the same emulated
server configuration in virtual time (llm_emu.virtual) with a host model. Same cells, same seeds; errors are
100 * (virtual - wall) / wall.

Usage:
  python bench/virtual_validate.py --profile aic:h100_sxm --rates 1,4,8,16,32 --burstiness 1,0.25 \\
      --num-prompts 300 --host llm_emu/virtual/host_default.json --out /tmp/vv
Measure alone: the wall side is only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.benchclient import Workload, run_benchmark
from llm_emu.server import ServerProcess, ServerSpec
from llm_emu.virtual import VirtualCell, run_virtual_cells
from llm_emu.virtual.host import resolve_host

METRICS = ("mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms",
           "mean_e2el_ms", "p99_e2el_ms", "output_throughput")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def run_wall(a: argparse.Namespace, cells: list[VirtualCell], out: Path) -> list[dict[str, Any]]:
    spec = ServerSpec(kind="emulated", model=a.model, profile=a.profile, vllm_args=tuple(a.vllm_args),
                      log_path=out / "wall-server.log")
    results = []
    with ServerProcess(spec) as server:
        for i, cell in enumerate(cells):
            if i:
                server.reset_prefix_cache()
            t = time.perf_counter()
            r = run_benchmark(server.base_url, server.served_model, cell.workload, tokenizer_model=a.model,
                              result_dir=out / "wall")
            r["wall_s"] = time.perf_counter() - t
            results.append(r)
            print(f"  wall {cell.workload.request_rate:g}/s b={cell.workload.burstiness:g}: "
                  f"ttft {r['mean_ttft_ms']:.2f} tpot {r['mean_tpot_ms']:.3f} ({r['wall_s']:.1f} s)", flush=True)
    return results


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---:|" * len(df.columns)
    body = ["| " + " | ".join(f"{v:+.1f}" if c in METRICS else f"{v:g}" for c, v in row.items()) + " |"
            for row in df.to_dict("records")]
    return "\n".join([head, *body])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="aic:h100_sxm")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--rates", type=_floats, default=_floats("1,4,8,16,32"))
    p.add_argument("--burstiness", type=_floats, default=_floats("1,0.25"))
    p.add_argument("--num-prompts", type=int, default=300)
    p.add_argument("--host", default=None, help="host model JSON (default: the shipped one; 'none': zero)")
    p.add_argument("--out", default="/tmp/llm-emu-virtual-validate")
    p.add_argument("--only", choices=("wall", "virtual"), default=None, help="rerun one side (the other is read)")
    p.add_argument("vllm_args", nargs="*", default=["--max-model-len", "4096"])
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    host = resolve_host(a.host)
    cells = [VirtualCell(Workload(num_prompts=a.num_prompts, request_rate=r, burstiness=b, seed=0))
             for b in a.burstiness for r in a.rates]
    print(f"uptime before: {os.getloadavg()}", flush=True)
    sides: dict[str, list[dict[str, Any]]] = {}
    for side in ("wall", "virtual"):
        cache = out / f"{side}.json"
        if a.only not in (None, side) and cache.exists():
            sides[side] = json.loads(cache.read_text())
            continue
        if side == "wall":
            sides[side] = run_wall(a, cells, out)
        else:
            t = time.perf_counter()
            sides[side] = run_virtual_cells(a.model, a.profile, a.vllm_args, cells, host=host, out_dir=out / "virtual")
            print(f"  virtual: {len(cells)} cells in {time.perf_counter() - t:.1f} s", flush=True)
        cache.write_text(json.dumps([{k: v for k, v in r.items() if not isinstance(v, list)} for r in sides[side]]))
    print(f"uptime after: {os.getloadavg()}", flush=True)
    rows = []
    for cell, w, v in zip(cells, sides["wall"], sides["virtual"], strict=True):
        row: dict[str, Any] = {"rate": cell.workload.request_rate, "burstiness": cell.workload.burstiness,
                               "wall_s": w.get("wall_s"), "virtual_s": v.get("virtual_wall_s")}
        for m in METRICS:
            row[m] = 100.0 * (v[m] - w[m]) / w[m] if w[m] else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    df.to_parquet(out / "errors.parquet", index=False)
    table = _markdown(df)
    (out / "errors.md").write_text(f"host model: {host.source}\n\n{table}\n")
    print(table)
    print("max |error| per metric:", {m: round(float(df[m].abs().max()), 2) for m in METRICS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
