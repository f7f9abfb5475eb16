"""Do two captures of the same device agree? Per batch shape, as measured and scaled by the device speed probes.

A pack should describe the device, not the minute it was captured in. This script takes two captures of the same
server (``llm-emu profile ... --keep-raw``, run one after the other on an otherwise idle machine) and prints, per
decode batch-size bucket and context bucket, the median step latency of each capture and their difference:
first with the steps as measured (the default pack), then with each run's steps scaled to the device's median
speed by the speed probes (``llm_emu.capture.speed``, what ``llm-emu profile --scale-to-probes`` writes into the
pack). It also prints each capture's probes in run order. Where the scaled columns of the two captures agree more
closely than the raw ones, scaling helps on that machine.

    python bench/capture_repeat.py runs/capA runs/capB

Each directory needs ``raw/steps.jsonl`` (``--keep-raw``) and ``capture.json`` (the runs' time windows).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llm_emu.capture.cli import run_windows, table_steps
from llm_emu.capture.recorder import read_steps
from llm_emu.profile.warmup import split_warmup

BATCH_EDGES = (1, 2, 4, 8, 16, 32, 64, 10**9)
CTX_PER_REQ_EDGES = (0, 128, 512, 10**9)
MIN_STEPS = 30
MIN_CPU_SHARE = 0.8
"""``llm-emu profile``'s default ``--min-cpu-share``: steps whose thread got less of the core are dropped."""


def _bucket(values: np.ndarray, edges: tuple[int, ...]) -> list[str]:
    out = []
    for v in values:
        i = int(np.searchsorted(edges, v, side="right")) - 1
        lo, hi = edges[i], edges[i + 1] - 1
        out.append(f"{lo}" if lo == hi else f"{lo}-{hi}" if hi < 10**8 else f">={lo}")
    return out


def load(capture: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[float | None]]:
    """(warm pure-decode steps as measured, the same scaled, probe ms per run)."""
    steps = read_steps(capture / "raw")
    if steps.empty:
        raise SystemExit(f"capture_repeat: no raw steps in {capture}/raw; capture with `llm-emu profile --keep-raw`")
    rows = json.loads((capture / "capture.json").read_text())["runs"]
    windows = run_windows(rows)
    if not any(w.probe for w in windows):
        raise SystemExit(f"capture_repeat: {capture} has no speed probes; capture without --no-speed-probes")
    # as llm-emu profile builds the pack: warm-up steps found on every step, then its table's steps (contended
    # ones dropped), as measured and with each run scaled by the probes around it
    cold = split_warmup(steps)[0]
    raw, _, how = table_steps(steps, True, MIN_CPU_SHARE, windows, scale_to_probes=False)
    scaled = table_steps(steps, True, MIN_CPU_SHARE, windows, scale_to_probes=True)[0]
    keep = ~cold.loc[raw.index] & (raw["num_prefill_reqs"] == 0) & (raw["num_decode_reqs"] > 0)
    assert how is not None
    return raw[keep], scaled[keep], list(how.probe_ms)


def table(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    def med(s: pd.DataFrame) -> pd.Series:
        ctx = (s["decode_context_tokens"] / s["num_decode_reqs"]).to_numpy()
        key = pd.DataFrame({"batch": _bucket(s["num_decode_reqs"].to_numpy(), BATCH_EDGES),
                            "ctx": _bucket(ctx, CTX_PER_REQ_EDGES), "ms": s["latency_us"].to_numpy() * 1e-3})
        g = key.groupby(["batch", "ctx"])["ms"]
        return g.median()[g.size() >= MIN_STEPS]

    ma, mb = med(a), med(b)
    both = pd.concat({"A ms": ma, "B ms": mb}, axis=1).dropna()
    both["B vs A %"] = 100 * (both["B ms"] - both["A ms"]) / both["A ms"]
    return both


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args(argv)
    ra, sa, pa = load(args.a)
    rb, sb, pb = load(args.b)
    for name, probes in (("A", pa), ("B", pb)):
        ms = [x for x in probes if x is not None]
        print(f"capture {name}: {len(ms)} probes, single-request decode step median {np.median(ms):.3f} ms, "
              f"min {min(ms):.3f}, max {max(ms):.3f} (max/min {max(ms) / min(ms):.2f}); in run order: "
              + " ".join(f"{x:.2f}" for x in ms))
    raw, scaled = table(ra, rb), table(sa, sb)
    out = raw.merge(scaled.add_suffix(" scaled"), left_index=True, right_index=True, how="inner")
    out = out.reset_index()
    order = {e: i for i, e in enumerate(_bucket(np.array(BATCH_EDGES[:-1]), BATCH_EDGES))}
    out = out.sort_values(["batch", "ctx"], key=lambda c: c.map(order).fillna(0) if c.name == "batch" else c)
    print("\nwarm pure-decode steps, median ms per (decode requests, context per request) bucket with >= "
          f"{MIN_STEPS} steps in each capture:\n")
    print("| decode reqs | ctx/req | A ms | B ms | B vs A % | A ms scaled | B ms scaled | B vs A % scaled |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in out.itertuples(index=False):
        v = list(r)
        print(f"| {v[0]} | {v[1]} | {v[2]:.3f} | {v[3]:.3f} | {v[4]:+.1f} | {v[5]:.3f} | {v[6]:.3f} | {v[7]:+.1f} |")
    d_raw, d_sc = out["B vs A %"].abs(), out["B vs A % scaled"].abs()
    print(f"\n|B vs A| over {len(out)} buckets: as measured median {d_raw.median():.1f} % (max {d_raw.max():.1f} %); "
          f"scaled median {d_sc.median():.1f} % (max {d_sc.max():.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
