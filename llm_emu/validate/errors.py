"""Error-table math: signed % error of the emulator vs real vLLM per metric, in the shape of LLM-Emu's Table 1.

Rows are metrics (mean and p99 of TTFT, TPOT, ITL, E2EL, and output throughput), columns are
(arrival pattern, request rate) cells; a cell is ``100 * (emulated - real) / real``. The last column is the
maximum absolute error of the row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
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


def _runs(results: pd.DataFrame) -> pd.DataFrame:
    """Results with ``repeat`` and ``run`` columns (old files without them: one repeat, runs in file order)."""
    r = results.copy()
    if "repeat" not in r.columns:
        r["repeat"] = 0
    if "run" not in r.columns:
        r["run"] = r.groupby(["kind", "burstiness", "rate", "repeat"]).cumcount()
    return r.sort_values(["burstiness", "rate", "repeat", "kind", "run"], kind="stable")


def _t975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def cell_stats(err_k: list[float], aa_k: list[float]) -> dict[str, float]:
    """Statistics of one (cell, metric) from its per-repeat errors and A/A differences (both in %).

    * ``err_pct``: mean error over the K repeats; ``err_ci95``: half-width of its 95 % t-interval (K >= 2);
    * ``aa_pct``: real-vs-real spread, the RMS of the A/A differences ``100 * (real_2 - real_1) / real_1``;
    * ``floor_pct``: the noise floor, ``2 * sqrt(3 / (4 K)) * aa_pct``: two standard deviations of the mean
      error an emulator indistinguishable from real vLLM would show (its error against the mean of two real
      runs has variance 3/2 sigma^2, an A/A difference 2 sigma^2; sigma is estimated from this cell's A/A
      pairs, K degrees of freedom, so the floor is itself uncertain at small K).
    """
    e = np.asarray([x for x in err_k if math.isfinite(x)], dtype=float)
    a = np.asarray([x for x in aa_k if math.isfinite(x)], dtype=float)
    nan = math.nan
    err = float(e.mean()) if len(e) else nan
    ci = _t975(len(e) - 1) * float(e.std(ddof=1)) / math.sqrt(len(e)) if len(e) >= 2 else nan
    aa = float(np.sqrt(np.mean(a**2))) if len(a) else nan
    floor = 2.0 * math.sqrt(3.0 / (4.0 * len(a))) * aa if len(a) else nan
    return {"err_pct": err, "err_ci95": ci, "aa_pct": aa, "floor_pct": floor, "repeats": float(len(e))}


def verdict(err_pct: float, floor_pct: float) -> str:
    """'within' the noise floor, 'outside' it, or 'n/a' (no A/A pair or no error)."""
    if not (math.isfinite(err_pct) and math.isfinite(floor_pct)):
        return "n/a"
    return "within" if abs(err_pct) <= floor_pct else "outside"


def _repeat_values(grp: pd.DataFrame, key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per repeat of one cell: real mean, emulated mean, error and A/A difference for one metric."""
    reals, emus, errs, aas = [], [], [], []
    for _, rep in grp.groupby("repeat"):
        real = rep.loc[rep["kind"] == KIND_REAL, key].astype(float).tolist()
        emu = rep.loc[rep["kind"] == KIND_EMU, key].astype(float).tolist()
        if not real or not emu:
            continue
        r_mean, e_mean = float(np.mean(real)), float(np.mean(emu))
        reals.append(r_mean)
        emus.append(e_mean)
        errs.append(signed_pct_error(e_mean, r_mean))
        aas.append(signed_pct_error(real[1], real[0]) if len(real) >= 2 else math.nan)
    return reals, emus, errs, aas


COLUMNS = ["burstiness", "rate", "metric", "key", "real", "emulated", "err_pct", "err_ci95", "aa_pct", "floor_pct",
           "verdict", "repeats"]


def error_frame(results: pd.DataFrame, metrics: Iterable[tuple[str, str]] = METRICS) -> pd.DataFrame:
    """Long table of errors: one row per (burstiness, rate, metric), see ``cell_stats`` for the columns.

    ``results`` has one row per benchmark run with columns kind ("real"/"emulated"), burstiness, rate, the
    vLLM keys and optionally ``repeat`` (repeat index) and ``run`` (order of the run within its repeat and
    side). Within a repeat the real runs are averaged (the emulated run is compared with the mean of the
    real runs around it) and the first two real runs give the A/A difference.
    """
    if results.empty:
        return pd.DataFrame(columns=COLUMNS)
    r = _runs(results)
    rows = []
    for (burst, rate), grp in r.groupby(["burstiness", "rate"], sort=True):
        for label, key in metrics:
            if key not in grp.columns:
                continue
            reals, emus, errs, aas = _repeat_values(grp, key)
            if not errs:
                continue
            st = cell_stats(errs, aas)
            rows.append({"burstiness": burst, "rate": rate, "metric": label, "key": key,
                         "real": float(np.mean(reals)), "emulated": float(np.mean(emus)), **st,
                         "verdict": verdict(st["err_pct"], st["floor_pct"])})
    return pd.DataFrame(rows, columns=COLUMNS)
