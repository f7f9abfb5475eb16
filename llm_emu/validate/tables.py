"""The validation report's tables: wide (metric rows x cell columns) frames and their GitHub markdown."""

from __future__ import annotations

import math

import pandas as pd

from llm_emu.validate.errors import GOALS, METRICS, arrival_label, verdict


def _rate_label(rate: float) -> str:
    return "inf" if rate == float("inf") else f"{rate:g}"


def cell_label(burstiness: float, rate: float) -> str:
    """Column label of a cell, e.g. 'Poisson 2/s'."""
    return f"{arrival_label(burstiness)} {_rate_label(rate)}/s"


def wide(errors: pd.DataFrame, column: str) -> pd.DataFrame:
    """Metric rows x cell columns (Poisson first, then by rate) of one column of the error frame."""
    e = errors.copy()
    e["cell"] = [cell_label(b, r) for b, r in zip(e["burstiness"], e["rate"], strict=True)]
    order = [cell_label(b, r)
             for b, r in sorted(set(zip(e["burstiness"], e["rate"], strict=True)), key=lambda t: (-t[0], t[1]))]
    out = e.pivot(index="metric", columns="cell", values=column)[order]
    return out.reindex([m for m, _ in METRICS if m in out.index])


def error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Wide table: metric rows x (arrival, rate) columns of signed % error, plus 'max |err|'."""
    if errors.empty:
        return pd.DataFrame()
    table = wide(errors, "err_pct").astype(float)
    table["max |err|"] = table.abs().max(axis=1)
    return table


def _head(cols: list[str], extra: list[str]) -> list[str]:
    head = ["metric", *cols, *extra]
    return ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]


def _signed(v: object, ci: object = math.nan) -> str:
    if not isinstance(v, float) or math.isnan(v):
        return "n/a"
    return f"{v:+.1f}" + (f" ±{ci:.1f}" if isinstance(ci, float) and math.isfinite(ci) else "")


def markdown_table(table: pd.DataFrame, goals: dict[str, float] | None = GOALS,
                   ci: pd.DataFrame | None = None) -> str:
    """The error table as GitHub markdown: signed % with one decimal (``±`` the 95 % interval where ``ci``
    has one, i.e. with repeats), the max |err| column and the goal column."""
    if table.empty:
        return "(no cells with both real and emulated results)\n"
    cols = [c for c in table.columns if c != "max |err|"]
    lines = _head([*cols, "max |err|"], ["goal"] if goals else [])
    for metric, row in table.iterrows():
        cells = [_signed(row[c], math.nan if ci is None else ci.loc[metric, c]) for c in cols]
        mx = row["max |err|"]
        cells.append("n/a" if math.isnan(mx) else f"{mx:.1f}")
        if goals:
            goal = goals.get(str(metric))
            met = goal is not None and not math.isnan(mx) and mx <= goal
            cells.append("" if goal is None else f"<= {goal:g} {'met' if met else 'not met'}")
        lines.append("| " + " | ".join([str(metric), *cells]) + " |")
    return "\n".join(lines) + "\n"


def noise_markdown(errors: pd.DataFrame, goals: dict[str, float] = GOALS) -> str:
    """Noise floor per cell with the verdict: ``3.4 in`` = floor 3.4 %, |err| within it; ``OUT`` = outside;
    ``*`` = the floor is above the goal (this cell cannot show the goal is met)."""
    if errors.empty or not errors["floor_pct"].notna().any():
        return "(no A/A pairs: the real side ran once per cell)\n"
    floor, verdicts = wide(errors, "floor_pct").astype(float), wide(errors, "verdict")
    lines = _head(list(floor.columns), ["cells within"])
    for metric, row in floor.iterrows():
        cells, inside, total = [], 0, 0
        goal = goals.get(str(metric), math.inf)
        for c in floor.columns:
            v, within = row[c], verdicts.loc[metric, c] == "within"
            if not math.isfinite(v):
                cells.append("n/a")
                continue
            total += 1
            inside += within
            cells.append(f"{v:.1f} {'in' if within else 'OUT'}{'*' if v > goal else ''}")
        lines.append("| " + " | ".join([str(metric), *cells, f"{inside}/{total}"]) + " |")
    return "\n".join(lines) + "\n"


GOAL_MET, GOAL_FLOOR, GOAL_MISSED = "met", "floor", "MISSED"
"""Per-cell verdicts against the goal (``goal_verdict``)."""

GOALS_SECTION = "## Against the goals"
GOALS_TEXT = ("Per cell: `met` = |error| within the goal; `floor` = |error| above the goal but within the cell's "
              "noise floor, which is itself above the goal (two real runs of the cell differ by more than the "
              "goal, so the cell can show neither); `MISSED` = neither:\n")


def goal_verdict(err_pct: float, floor_pct: float, goal: float) -> str:
    """One cell against its goal: ``met`` (|error| <= goal); ``floor`` (|error| above the goal but within a
    noise floor that is itself above the goal: two real runs of the cell differ by more than the goal, so
    this cell cannot show the goal met or missed); ``MISSED`` (otherwise); ``n/a`` without an error."""
    if not math.isfinite(err_pct):
        return "n/a"
    if abs(err_pct) <= goal:
        return GOAL_MET
    if floor_pct > goal and verdict(err_pct, floor_pct) == "within":
        return GOAL_FLOOR
    return GOAL_MISSED


def goal_markdown(errors: pd.DataFrame, goals: dict[str, float] = GOALS) -> str:
    """Every cell of every metric with a goal: ``met`` / ``floor`` / ``MISSED`` (``goal_verdict``), and the
    counts per metric."""
    if errors.empty:
        return "(no cells with both real and emulated results)\n"
    err = wide(errors, "err_pct").astype(float)
    floor = wide(errors, "floor_pct").astype(float)
    lines = _head(list(err.columns), ["goal", "met / floor / missed"])
    for metric, row in err.iterrows():
        goal = goals.get(str(metric))
        if goal is None:
            continue
        cells = [goal_verdict(row[c], floor.loc[metric, c], goal) for c in err.columns]
        counts = "/".join(str(cells.count(v)) for v in (GOAL_MET, GOAL_FLOOR, GOAL_MISSED))
        lines.append("| " + " | ".join([str(metric), *cells, f"<= {goal:g}", counts]) + " |")
    return "\n".join(lines) + "\n"


def values_table(errors: pd.DataFrame) -> str:
    """Markdown of the raw values behind the errors (real vs emulated per cell)."""
    if errors.empty:
        return ""
    lines = ["| arrival | rate | metric | real | emulated | err % | A/A % | floor % | verdict |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for _, r in errors.sort_values(["burstiness", "rate"], ascending=[False, True]).iterrows():
        lines.append(f"| {arrival_label(r['burstiness'])} | {_rate_label(r['rate'])} | {r['metric']} | "
                     f"{r['real']:.2f} | {r['emulated']:.2f} | {_signed(r['err_pct'], r['err_ci95'])} | "
                     f"{r['aa_pct']:.1f} | {r['floor_pct']:.1f} | {r['verdict']} |")
    return "\n".join(lines) + "\n"
