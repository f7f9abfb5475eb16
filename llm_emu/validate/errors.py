"""Error-table math: signed % error of the emulator vs real vLLM per metric, in the shape of LLM-Emu's Table 1.

Rows are metrics (mean and p99 of TTFT, TPOT, ITL, E2EL, and output throughput), columns are
(arrival pattern, request rate) cells; a cell is ``100 * (emulated - real) / real``. The last column is the
maximum absolute error of the row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

#: (row label, vLLM benchmark result key) in table order.
METRICS: tuple[tuple[str, str], ...] = (
    ("TTFT mean", "mean_ttft_ms"),
    ("TTFT p99", "p99_ttft_ms"),
    ("TPOT mean", "mean_tpot_ms"),
    ("TPOT p99", "p99_tpot_ms"),
    ("ITL mean", "mean_itl_ms"),
    ("ITL p99", "p99_itl_ms"),
    ("E2EL mean", "mean_e2el_ms"),
    ("E2EL p99", "p99_e2el_ms"),
    ("Output throughput", "output_throughput"),
)

#: Per-metric goals (|signed % error|) of the project, for the report.
GOALS: dict[str, float] = {
    "TTFT mean": 4.0, "TPOT mean": 2.0, "ITL mean": 2.0, "E2EL mean": 2.0, "Output throughput": 1.0,
    "TTFT p99": 8.0, "TPOT p99": 8.0, "ITL p99": 8.0, "E2EL p99": 8.0,
}

KIND_REAL = "real"
KIND_EMU = "emulated"


def signed_pct_error(emulated: float, real: float) -> float:
    """``100 * (emulated - real) / real``; NaN when real is 0 or either is missing."""
    if real is None or emulated is None or not math.isfinite(real) or not math.isfinite(emulated) or real == 0:
        return math.nan
    return 100.0 * (emulated - real) / real


def arrival_label(burstiness: float) -> str:
    return "Poisson" if burstiness == 1.0 else f"bursty g={burstiness:g}"


def error_frame(results: pd.DataFrame, metrics: Iterable[tuple[str, str]] = METRICS) -> pd.DataFrame:
    """Long table of errors: one row per (burstiness, rate, metric) with real, emulated and err_pct.

    ``results`` has one row per run with columns kind ("real"/"emulated"), burstiness, rate and the vLLM keys.
    When a cell was run several times, the runs are averaged first.
    """
    keys = [k for _, k in metrics]
    have = [k for k in keys if k in results.columns]
    g = results.groupby(["kind", "burstiness", "rate"])[have].mean().reset_index()
    real = g[g["kind"] == KIND_REAL].set_index(["burstiness", "rate"])
    emu = g[g["kind"] == KIND_EMU].set_index(["burstiness", "rate"])
    rows = []
    for idx in sorted(set(real.index) & set(emu.index)):
        for label, key in metrics:
            if key not in have:
                continue
            r, e = float(real.loc[idx, key]), float(emu.loc[idx, key])
            rows.append({"burstiness": idx[0], "rate": idx[1], "metric": label, "key": key, "real": r,
                         "emulated": e, "err_pct": signed_pct_error(e, r)})
    return pd.DataFrame(rows, columns=["burstiness", "rate", "metric", "key", "real", "emulated", "err_pct"])


def _rate_label(rate: float) -> str:
    return "inf" if rate == float("inf") else f"{rate:g}"


def error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Wide table: metric rows x (arrival, rate) columns of signed % error, plus 'max |err|'."""
    if errors.empty:
        return pd.DataFrame()
    e = errors.copy()
    e["cell"] = [f"{arrival_label(b)} {_rate_label(r)}/s" for b, r in zip(e["burstiness"], e["rate"], strict=True)]
    order = [f"{arrival_label(b)} {_rate_label(r)}/s"
             for b, r in sorted(set(zip(e["burstiness"], e["rate"], strict=True)), key=lambda t: (-t[0], t[1]))]
    wide = e.pivot(index="metric", columns="cell", values="err_pct")[order]
    wide = wide.reindex([m for m, _ in METRICS if m in wide.index])
    wide["max |err|"] = wide.abs().max(axis=1)
    return wide


def markdown_table(wide: pd.DataFrame, goals: dict[str, float] | None = GOALS) -> str:
    """The wide table as GitHub markdown, signed % with one decimal, plus the goal column."""
    if wide.empty:
        return "(no cells with both real and emulated results)\n"
    cols = list(wide.columns)
    head = ["metric", *cols] + (["goal"] if goals else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for metric, row in wide.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if not isinstance(v, float) or math.isnan(v):
                cells.append("n/a")
            elif c == "max |err|":
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v:+.1f}")
        if goals:
            goal = goals.get(str(metric))
            met = goal is not None and not math.isnan(row["max |err|"]) and row["max |err|"] <= goal
            cells.append("" if goal is None else f"<= {goal:g} {'met' if met else 'not met'}")
        lines.append("| " + " | ".join([str(metric), *cells]) + " |")
    return "\n".join(lines) + "\n"


def values_table(errors: pd.DataFrame) -> str:
    """Markdown of the raw values behind the errors (real vs emulated per cell)."""
    if errors.empty:
        return ""
    lines = ["| arrival | rate | metric | real | emulated | err % |", "|---|---:|---|---:|---:|---:|"]
    for _, r in errors.sort_values(["burstiness", "rate"], ascending=[False, True]).iterrows():
        lines.append(f"| {arrival_label(r['burstiness'])} | {_rate_label(r['rate'])} | {r['metric']} | "
                     f"{r['real']:.2f} | {r['emulated']:.2f} | {r['err_pct']:+.1f} |")
    return "\n".join(lines) + "\n"
