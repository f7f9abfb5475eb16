"""Text for people: the dry-run plan with a wall-time estimate, and the best configs meeting the SLOs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from orchestrator.runner import rate_name
from orchestrator.spec import SweepSpec
from orchestrator.trials import PrunedTrial, Trial

STARTUP_S = {"emulated": 45.0, "real": 90.0}
"""Rough server start time per kind, Ray actor start included (measured ~40 s on 2 busy cores)."""
DRAIN_S = 10.0
"""Rough time for the last requests of a benchmark run to finish."""
SATURATION_RPS = 20.0
"""Assumed completion rate when the offered rate is inf (for the estimate only)."""
VIRTUAL_STARTUP_S = 5.0
"""Rough engine build time of a virtual-time trial on a reused actor (the first one per actor also imports
vLLM, ~25 s on 2 busy cores)."""
VIRTUAL_S_PER_REQUEST = 0.02
"""Rough wall seconds per request of a virtual-time run (the engine's own CPU time; no waiting)."""


def estimate_trial_s(spec: SweepSpec, rates: Sequence[float] | None = None) -> float:
    """Rough wall time of one trial at ``rates`` (default: the workload's): start + per rate."""
    w = spec.workload
    rates = w.request_rates if rates is None else rates
    if spec.clock == "virtual":
        return VIRTUAL_STARTUP_S + VIRTUAL_S_PER_REQUEST * w.num_prompts * len(rates)
    per_rate = [w.num_prompts / min(r, SATURATION_RPS) + DRAIN_S for r in rates]
    return STARTUP_S.get(spec.kind, 30.0) + sum(per_rate)


def estimate_total_s(n_trials: int, trial_s: float, parallel: int) -> float:
    """Wall time of ``n_trials`` run ``parallel`` at a time."""
    return math.ceil(n_trials / max(parallel, 1)) * trial_s


def fmt_duration(seconds: float) -> str:
    """``1h 02m``, ``4m 10s`` or ``35s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def plan_text(spec: SweepSpec, header: Sequence[str], trials: Sequence[Trial], pruned: Sequence[PrunedTrial],
              done: set[str], parallel: int, trial_s: float, n_to_run: int | None = None) -> str:
    """The --dry-run listing: the proposal source, every known trial (run or done), every pruned config and why.

    Args:
        spec: the sweep.
        header: the proposal source's description (grid size, or the search's objective, budget and space).
        trials, pruned, done: trials known in advance (the grid's), pruned configs, hashes already finished.
        parallel: trials run at a time.
        trial_s: estimated wall time of one trial.
        n_to_run: trials to run when not known in advance (a search's budget); default: the unfinished trials.
    """
    rates = ", ".join(rate_name(r) for r in spec.workload.request_rates)
    todo = n_to_run if n_to_run is not None else len([t for t in trials if t.hash not in done])
    lines = [
        f"sweep {spec.name!r}: {spec.workload.num_prompts} prompts per run, rates {rates} req/s, clock {spec.clock}"
        + (f" (host model {spec.host_model})" if spec.clock == "virtual" else ""),
        f"model {spec.model}, {spec.kind}" + (f" profile {spec.profile}" if spec.profile else ""),
        *header,
        "",
    ]
    for t in trials:
        state = "done" if t.hash in done else "run "
        lines.append(f"  [{state}] {t.hash}  {t.label}")
    for p in pruned:
        lines.append(f"  [skip] {'-' * 16}  {p.label}: {p.reason}")
    up_to = "" if n_to_run is None else "up to "
    lines += ["", f"to run: {up_to}{todo} trials, {parallel} at a time, ~{fmt_duration(trial_s)} each -> "
                  f"estimated wall time {up_to}{fmt_duration(estimate_total_s(todo, trial_s, parallel))}",
              "nothing was started or written (--dry-run)"]
    return "\n".join(lines)


def best_configs(df: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Per config, its best row: highest goodput among rows meeting the SLO (or throughput without SLOs).

    Configs that meet the SLO at no rate are left out when SLOs are set.
    """
    if df.empty or "status" not in df:
        return pd.DataFrame()
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame()
    has_slo = "meets_slo" in ok and ok["meets_slo"].notna().any()
    if has_slo:
        ok = ok[ok["meets_slo"].fillna(False).astype(bool)]
        key = "request_goodput" if "request_goodput" in ok else "request_throughput"
    else:
        key = "output_throughput" if "output_throughput" in ok else "request_throughput"
    if ok.empty:
        return pd.DataFrame()
    best = ok.sort_values(key, ascending=False).groupby("trial_hash", sort=False).head(1)
    cols = [c for c in ("config", "clock", "request_rate", key, "output_throughput", "p99_ttft_ms", "p99_tpot_ms",
                        "slo_attainment", "trial_hash") if c in best]
    cols = list(dict.fromkeys(cols))
    return best[cols].head(top).reset_index(drop=True)


def summary_text(df: pd.DataFrame, n_pruned: int = 0) -> str:
    """End-of-sweep summary: counts, failures, and the best configs table."""
    if df.empty:
        return "no results"
    per_trial = df.groupby("trial_hash")["status"].first()
    lines = [f"{len(per_trial)} trials: {(per_trial == 'ok').sum()} ok, {(per_trial != 'ok').sum()} failed, "
             f"{n_pruned} pruned"]
    for _, row in df[df["status"] != "ok"].drop_duplicates("trial_hash").iterrows():
        attempts = f" ({row['attempts']} attempts; every error in results.parquet attempt_errors)" \
            if row.get("attempts", 1) > 1 else ""
        lines.append(f"  failed {row['trial_hash']} {row['config']}: {row['error']}{attempts}")
    best = best_configs(df)
    if best.empty:
        lines.append("no config met the SLOs at any rate" if "meets_slo" in df else "no successful trial")
    else:
        title = "best configs meeting the SLOs" if df.get("meets_slo") is not None and \
            df["meets_slo"].notna().any() else "best configs by throughput (no SLOs)"
        lines += [title + ":", best.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    return "\n".join(lines)
