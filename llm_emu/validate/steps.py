"""Step-level oracle accuracy of a validation run: emulated step latencies vs what real vLLM measured.

During validation the real server runs the capture's recording worker (``OUT/real-steps/steps.jsonl``: step
features, device latency, wall time ``t``) and the emulated server writes its step trace
(``OUT/emulated-steps.jsonl``: features, the oracle's draw ``latency``, monotonic ``released``). Each step is
attributed to the benchmark run whose time window holds it (``results.parquet`` keeps the windows), steps are
grouped into batch-shape buckets (prefill tokens x decode requests), and per bucket the report compares:

* the median and p90 of the emulated step latencies with those of the real ones (``p50_err_pct``,
  ``p90_err_pct``; ``100 * (emulated - real) / real``), over the same cells;
* the real side against itself (``aa_p50_pct``: second real run vs first, where the real side ran twice);
* the oracle at the real steps' own features (``oracle_median_err_pct``, ``oracle_p90_abs_err_pct``: median
  and p90 of ``100 * (expected - measured) / measured`` per real step), which separates the oracle's accuracy
  from differences in batch composition inside a bucket.

``python -m llm_emu.validate.steps OUT`` prints the table of an existing validation directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_emu.profile.features import StepFeatures
from llm_emu.validate.errors import KIND_EMU, KIND_REAL

REAL_STEPS = Path("real-steps") / "steps.jsonl"
EMU_STEPS = Path("emulated-steps.jsonl")
FEATURES = [f for f in StepFeatures.__dataclass_fields__]
PREFILL_EDGES = (0, 64, 256, 1024)
"""Bucket upper bounds of prefill tokens per step (then '>1024')."""
DECODE_EDGES = (0, 1, 2, 4, 8, 16, 32, 64, 128)
"""Bucket upper bounds of decode requests per step (then '>128')."""
MIN_STEPS = 20
"""Buckets with fewer steps on either side are left out of the comparison."""
BACK_TO_BACK_S = 0.005
"""Steps closer than this after the previous one count as back-to-back (host gap measurable)."""
COLUMNS = ["burstiness", "rate", "bucket", "n_real", "n_emu", "real_p50_ms", "emu_p50_ms", "p50_err_pct",
           "real_p90_ms", "emu_p90_ms", "p90_err_pct", "aa_p50_pct", "oracle_median_err_pct",
           "oracle_p90_abs_err_pct"]


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_json(path, lines=True)


def load_steps(out: Path) -> pd.DataFrame:
    """Both sides' steps: features, ``kind``, ``latency_s``, ``t`` (the clock of that side's run window)."""
    real, emu = _read(out / REAL_STEPS), _read(out / EMU_STEPS)
    parts = []
    if not real.empty:
        parts.append(real.assign(kind=KIND_REAL, latency_s=real["latency_us"] * 1e-6, t=real["t"]))
    if not emu.empty:
        parts.append(emu.assign(kind=KIND_EMU, latency_s=emu["latency"], t=emu["released"]))
    if not parts:
        return pd.DataFrame(columns=[*FEATURES, "kind", "latency_s", "t"])
    return pd.concat([p[[*FEATURES, "kind", "latency_s", "t"]] for p in parts], ignore_index=True)


def attribute(steps: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Steps inside a run's window get that run's burstiness, rate, repeat and run; others are dropped.

    Real steps are stamped with wall time (``t_wall_start``/``t_wall_end``), emulated ones with the
    monotonic clock (``t_mono_start``/``t_mono_end``).
    """
    need = {"t_wall_start", "t_wall_end", "t_mono_start", "t_mono_end"}
    if steps.empty or not need <= set(results.columns):
        return steps.iloc[0:0].assign(burstiness=[], rate=[], repeat=[], run=[])
    parts = []
    for row in results.itertuples():
        clock = "wall" if row.kind == KIND_REAL else "mono"
        lo, hi = getattr(row, f"t_{clock}_start"), getattr(row, f"t_{clock}_end")
        sel = steps[(steps["kind"] == row.kind) & (steps["t"] >= lo) & (steps["t"] <= hi)]
        parts.append(sel.assign(burstiness=row.burstiness, rate=row.rate, repeat=getattr(row, "repeat", 0),
                                run=getattr(row, "run", 0)))
    return pd.concat(parts, ignore_index=True) if parts else steps.iloc[0:0]


def _band(values: np.ndarray, edges: tuple[int, ...], name: str) -> list[str]:
    labels = []
    for v in values:
        i = int(np.searchsorted(edges, v))  # first edge >= v
        if i == len(edges):
            labels.append(f"{name}>{edges[-1]}")
        elif i == 0 or edges[i - 1] + 1 == edges[i]:
            labels.append(f"{name}{edges[i]}")
        else:
            labels.append(f"{name}{edges[i - 1] + 1}-{edges[i]}")
    return labels


def bucket(steps: pd.DataFrame) -> pd.Series:
    """Batch-shape label per step, e.g. ``P65-256 D1`` (prefill tokens, decode requests)."""
    pre = _band(steps["num_prefill_tokens"].to_numpy(), PREFILL_EDGES, "P")
    dec = _band(steps["num_decode_reqs"].to_numpy(), DECODE_EDGES, "D")
    return pd.Series([f"{p} {d}" for p, d in zip(pre, dec, strict=True)], index=steps.index)


def oracle_expected(real: pd.DataFrame, oracle: Any) -> np.ndarray:
    """Per real step: ``oracle.expected(features)`` (seconds) at the step's own features."""
    feats = real[FEATURES].to_numpy(dtype=np.int64)
    return np.array([oracle.expected(StepFeatures(*map(int, f))) for f in feats], dtype=float)


def oracle_errors(real: pd.DataFrame, oracle: Any) -> np.ndarray:
    """Per real step: ``100 * (oracle.expected(features) - measured) / measured``."""
    exp = oracle_expected(real, oracle)
    lat = real["latency_s"].to_numpy(dtype=float)
    return 100.0 * (exp - lat) / np.where(lat > 0, lat, np.nan)


def _pct(a: float, b: float) -> float:
    return float(100.0 * (a - b) / b) if b > 0 and np.isfinite(a) else float("nan")


def _compare(real: pd.DataFrame, emu: pd.DataFrame) -> dict[str, float]:
    r, e = real["latency_s"].to_numpy() * 1e3, emu["latency_s"].to_numpy() * 1e3
    out: dict[str, float] = {"n_real": len(r), "n_emu": len(e)}
    for q, name in ((50, "p50"), (90, "p90")):
        rq, eq = float(np.percentile(r, q)), float(np.percentile(e, q))
        out |= {f"real_{name}_ms": rq, f"emu_{name}_ms": eq, f"{name}_err_pct": _pct(eq, rq)}
    aa = []
    for _, rep in real.groupby("repeat"):
        first, second = (rep.loc[rep["run"] == i, "latency_s"].to_numpy() for i in (0, 1))
        if len(first) >= MIN_STEPS and len(second) >= MIN_STEPS:
            aa.append(_pct(float(np.median(second)), float(np.median(first))))
    out["aa_p50_pct"] = float(np.sqrt(np.mean(np.square(aa)))) if aa else float("nan")
    oe = real["oracle_err_pct"].dropna().to_numpy() if "oracle_err_pct" in real else np.array([])
    out["oracle_median_err_pct"] = float(np.median(oe)) if len(oe) else float("nan")
    out["oracle_p90_abs_err_pct"] = float(np.percentile(np.abs(oe), 90)) if len(oe) else float("nan")
    return out


def step_frame(steps: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, bucket) and pooled over cells (burstiness/rate NaN): see the module docstring."""
    if steps.empty:
        return pd.DataFrame(columns=COLUMNS)
    s = steps.assign(bucket=bucket(steps))
    rows = []
    groups = [((b, r), g) for (b, r), g in s.groupby(["burstiness", "rate"])] + [((np.nan, np.nan), s)]
    for (burst, rate), cell in groups:
        for name, g in cell.groupby("bucket"):
            real, emu = g[g["kind"] == KIND_REAL], g[g["kind"] == KIND_EMU]
            if len(real) >= MIN_STEPS and len(emu) >= MIN_STEPS:
                rows.append({"burstiness": burst, "rate": rate, "bucket": name, **_compare(real, emu)})
    return pd.DataFrame(rows, columns=COLUMNS)


def host_gaps(steps: pd.DataFrame) -> str:
    """Median host time between back-to-back steps (cycle minus device latency), per side."""
    lines = []
    for kind, g in steps.groupby("kind"):
        g = g.sort_values("t")
        gap = g["t"].diff() - g["latency_s"]
        gap = gap[(gap >= 0) & (gap < BACK_TO_BACK_S)] * 1e3
        if len(gap):
            lines.append(f"{kind}: {len(g)} steps, host gap between back-to-back steps median {gap.median():.3f} ms")
    return "; ".join(lines)


def markdown(frame: pd.DataFrame) -> str:
    """The pooled (all cells) rows as GitHub markdown, busiest buckets first."""
    pooled = frame[frame["rate"].isna()].sort_values("n_real", ascending=False)
    if pooled.empty:
        return f"(no step traces, or no bucket with >= {MIN_STEPS} steps on both sides)\n"
    head = ("| bucket | steps real | steps emulated | real p50 ms | emulated p50 ms | p50 err % | real p90 ms | "
            "emulated p90 ms | p90 err % | real A/A p50 % | oracle median err % | oracle p90 abs err % |")
    lines = [head, "|---|" + "---:|" * 11]
    for r in pooled.itertuples():
        lines.append(f"| {r.bucket} | {r.n_real:.0f} | {r.n_emu:.0f} | {r.real_p50_ms:.2f} | {r.emu_p50_ms:.2f} | "
                     f"{r.p50_err_pct:+.1f} | {r.real_p90_ms:.2f} | {r.emu_p90_ms:.2f} | {r.p90_err_pct:+.1f} | "
                     f"{r.aa_p50_pct:.1f} | {r.oracle_median_err_pct:+.1f} | {r.oracle_p90_abs_err_pct:.1f} |")
    return "\n".join(lines) + "\n"


def step_report(out: Path, results: pd.DataFrame, oracle: Any | None = None) -> tuple[pd.DataFrame, str]:
    """(per-cell-and-bucket frame, markdown section) of a validation directory; empty without traces."""
    steps = attribute(load_steps(out), results)
    if oracle is not None and not steps.empty:
        real = steps["kind"] == KIND_REAL
        steps.loc[real, "oracle_err_pct"] = oracle_errors(steps[real], oracle)
    frame = step_frame(steps)
    text = markdown(frame)
    gaps = host_gaps(steps) if not steps.empty else ""
    return frame, text + (f"\n{gaps}\n" if gaps else "")


def warmup_markdown(out: Path, oracle: Any | None) -> str:
    """The pack's warm-up model next to what the real server's steps of this validation show: per idle-time bin
    and position after an idle device, the median extra of the real steps over the oracle (n) vs the model."""
    from llm_emu.profile.warmup import IDLE_EDGES_S, POSITIONS, Warmup, idle_bins, split_warmup

    real = _read(out / REAL_STEPS)
    if oracle is None or real.empty or "t" not in real.columns:
        return ""
    cold, idle, pos = split_warmup(real)
    real = real.assign(idle=idle, pos=pos)[cold & np.isfinite(idle)]
    if real.empty:
        return ""
    pack = getattr(oracle, "pack", None)
    model = Warmup.from_dict(pack.meta.warmup if pack is not None else None)
    extra = real["latency_us"].to_numpy() * 1e-3 - oracle_expected(real, oracle) * 1e3
    bins = idle_bins(real["idle"].to_numpy())
    head = "| idle before | " + " | ".join(f"position {p}: real (n) / model" for p in range(POSITIONS)) + " |"
    lines = [head, "|---|" + "---:|" * POSITIONS]
    for b, lo in enumerate(IDLE_EDGES_S):
        cells = []
        for p in range(POSITIONS):
            sel = (bins == b) & (real["pos"].to_numpy() == p)
            got = f"{np.median(extra[sel]):+.2f} ({sel.sum()})" if sel.any() else "- (0)"
            cells.append(f"{got} / {model.extra_s(lo, p) * 1e3:+.2f}")
        hi = f"{IDLE_EDGES_S[b + 1]:g} s" if b + 1 < len(IDLE_EDGES_S) else "longer"
        lines.append(f"| {lo:g} s - {hi} | " + " | ".join(cells) + " |")
    return ("Extra device time (ms) of the real server's first steps after an idle device, over the oracle's "
            "warm estimate of the same batch (median, steps), next to the pack's warm-up model "
            f"({model.describe()}):\n\n" + "\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    _, text = step_report(out, pd.read_parquet(out / "results.parquet"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
