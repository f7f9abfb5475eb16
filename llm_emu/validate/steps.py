"""Step-level diagnostics of a validation run made with ``--real-trace --emu-trace``.

Compares, per batch-shape bucket, the device latency real vLLM measured during validation with what the
emulator drew, and the host time between steps (cycle time minus device latency) on both sides::

    python -m llm_emu.validate.steps OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

BACK_TO_BACK_S = 0.005
"""Steps closer than this after the previous one count as back-to-back (host overhead measurable)."""


def load_real(out: Path) -> pd.DataFrame:
    df = pd.read_json(out / "real-steps" / "steps.jsonl", lines=True)
    df["latency_s"] = df["latency_us"] * 1e-6
    df["cycle_s"] = df["t"].diff()
    return df


def load_emulated(out: Path) -> pd.DataFrame:
    df = pd.read_json(out / "emulated-steps.jsonl", lines=True)
    df["latency_s"] = df["latency"]
    df["cycle_s"] = df["released"].diff()
    return df


def _bucket(df: pd.DataFrame) -> pd.Series:
    dec = pd.cut(df["num_decode_reqs"], [-1, 0, 1, 2, 4, 8, 16, 32, 64, 128, 1 << 20]).astype(str)
    pre = pd.cut(df["num_prefill_tokens"], [-1, 0, 64, 256, 1024, 1 << 20]).astype(str)
    return "prefill" + pre + " decode" + dec


def compare(out: Path) -> str:
    real, emu = load_real(out), load_emulated(out)
    rows = []
    for name, df in (("real", real), ("emulated", emu)):
        b2b = df[df["cycle_s"] - df["latency_s"] < BACK_TO_BACK_S]
        host = (b2b["cycle_s"] - b2b["latency_s"]) * 1e3
        rows.append(f"{name}: {len(df)} steps, mean device latency {df['latency_s'].mean() * 1e3:.3f} ms, "
                    f"host gap between back-to-back steps median {host.median():.3f} ms, mean {host.mean():.3f} ms")
    real["bucket"], emu["bucket"] = _bucket(real), _bucket(emu)
    g = pd.DataFrame({
        "real_n": real.groupby("bucket").size(), "emu_n": emu.groupby("bucket").size(),
        "real_ms": real.groupby("bucket")["latency_s"].mean() * 1e3,
        "emu_ms": emu.groupby("bucket")["latency_s"].mean() * 1e3,
    }).dropna()
    g["err_pct"] = 100 * (g["emu_ms"] / g["real_ms"] - 1)
    g = g[(g["real_n"] >= 20) & (g["emu_n"] >= 20)]
    w = np.average(g["err_pct"], weights=g["real_n"]) if len(g) else float("nan")
    return "\n".join([*rows, g.round(3).to_string(), f"step-weighted mean device-latency error: {w:+.2f} %"])


if __name__ == "__main__":
    print(compare(Path(sys.argv[1])))
