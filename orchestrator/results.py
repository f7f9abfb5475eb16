"""Results on disk: one parquet per trial (OUT/results/<hash>.parquet) plus a combined OUT/results.parquet.

Every file is written to a temp name and ``os.replace``-d into place, so a reader (or a resumed sweep after
``kill -9``) sees a trial's rows either completely or not at all; rows are keyed by trial hash, so re-running
a trial replaces its file instead of adding rows. What ran is decided from the trial hashes of the spec,
never by listing the directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.fsutil import atomic_write_parquet
from orchestrator.runner import RateResult, TrialResult
from orchestrator.trials import Trial

ENGINE_PREFIX = "engine."
"""Column prefix of effective engine args (``engine.max_num_seqs``)."""
META_COLUMNS = frozenset({
    "trial_hash", "trial_index", "config", "kind", "model", "profile", "profile_id", "engine_args",
    "num_prompts", "dataset", "burstiness", "slo_ttft_ms", "slo_tpot_ms", "slo_e2el_ms", "slo_target",
    "status", "error", "attempt_errors", "attempts", "node", "trial_elapsed_s", "log_path", "request_rate",
    "meets_slo", "elapsed_s", "clock", "host_model",
})
"""Columns that describe a row rather than measure it (everything else: vLLM metrics + slo_attainment)."""


def _base_row(trial: Trial, result: TrialResult) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trial_hash": trial.hash, "trial_index": trial.index, "config": trial.label,
        "kind": trial.kind, "clock": trial.clock, "host_model": trial.host_model, "model": trial.model,
        "profile": trial.profile, "profile_id": trial.profile_id,
        "engine_args": json.dumps(dict(trial.engine_args), sort_keys=True),
        "num_prompts": trial.workload.num_prompts, "dataset": trial.workload.dataset,
        "burstiness": trial.workload.burstiness,
        "slo_ttft_ms": trial.slo.ttft_ms if trial.slo else None,
        "slo_tpot_ms": trial.slo.tpot_ms if trial.slo else None,
        "slo_e2el_ms": trial.slo.e2el_ms if trial.slo else None,
        "slo_target": trial.slo.attainment if trial.slo else None,
        "status": result.status, "error": result.error, "attempt_errors": json.dumps(list(result.attempt_errors)),
        "attempts": result.attempts, "node": result.node,
        "trial_elapsed_s": result.elapsed_s, "log_path": result.log_path,
    }
    for key, value in trial.engine_args:
        row[ENGINE_PREFIX + key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return row


def _rate_row(rate: RateResult, trial: Trial) -> dict[str, Any]:
    met = trial.slo.met(rate.slo_attainment) if trial.slo else None
    return {"request_rate": rate.request_rate, **rate.metrics, "slo_attainment": rate.slo_attainment,
            "meets_slo": met, "elapsed_s": rate.elapsed_s}


def rows_for(trial: Trial, result: TrialResult) -> list[dict[str, Any]]:
    """One row per (trial, rate); a failed trial gets one row per offered rate, status "failed"."""
    base = _base_row(trial, result)
    if result.status == "ok":
        return [{**base, **_rate_row(r, trial)} for r in result.rates]
    return [{**base, "request_rate": r} for r in trial.workload.request_rates]


def _uniform(df: pd.DataFrame) -> pd.DataFrame:
    """Make mixed-type object columns writable (e.g. an engine arg "auto" in one trial, 512 in another)."""
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if not _missing(v)}
            if len(kinds) > 1:
                df[col] = df[col].map(lambda v: None if v is None else str(v))
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The measured columns of a results frame: vLLM's metric keys and slo_attainment."""
    return [c for c in df.columns if c not in META_COLUMNS and not c.startswith(ENGINE_PREFIX)]


class ResultStore:
    """The results directory of one sweep."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.trial_dir = self.out_dir / "results"
        self.combined_path = self.out_dir / "results.parquet"

    def trial_path(self, trial_hash: str) -> Path:
        """OUT/results/<hash>.parquet."""
        return self.trial_dir / f"{trial_hash}.parquet"

    def read_trial(self, trial_hash: str) -> pd.DataFrame | None:
        """A trial's rows, or None if it has not finished (or its file is unreadable)."""
        path = self.trial_path(trial_hash)
        if not path.is_file():
            return None
        try:
            return pd.read_parquet(path)
        except Exception:  # a foreign or damaged file: treat as not finished, it will be rewritten
            return None

    def is_done(self, trial_hash: str, retry_failed: bool = False) -> bool:
        """Whether the trial has finished rows (failed ones count unless ``retry_failed``)."""
        df = self.read_trial(trial_hash)
        if df is None or df.empty:
            return False
        return not (retry_failed and (df["status"] != "ok").any())

    def write(self, trial: Trial, result: TrialResult) -> Path:
        """Atomically (re)write the trial's rows."""
        path = self.trial_path(trial.hash)
        atomic_write_parquet(path, _uniform(pd.DataFrame(rows_for(trial, result))))
        return path

    def combine(self, trials: Iterable[Trial | str]) -> pd.DataFrame:
        """Concatenate the finished trials of ``trials`` (Trials or hashes), atomically rewrite OUT/results.parquet."""
        hashes = [t if isinstance(t, str) else t.hash for t in trials]
        frames = [df for h in hashes if (df := self.read_trial(h)) is not None and not df.empty]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        atomic_write_parquet(self.combined_path, _uniform(df))
        return df

    def load(self) -> pd.DataFrame:
        """The combined results (empty if none yet)."""
        return pd.read_parquet(self.combined_path) if self.combined_path.is_file() else pd.DataFrame()


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
