"""Atomic per-trial results, the combined file, SLO attainment, resume without lost or duplicated rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sweep_factories import make_spec

from orchestrator.results import ResultStore
from orchestrator.runner import TrialContext, TrialResult
from orchestrator.testing import FakeRunner
from orchestrator.trials import expand


def _ok(trial, out):
    rates = FakeRunner()(trial, TrialContext(str(out), 0))
    return TrialResult(trial.hash, "ok", rates, node="n1")


def test_rows_per_trial_and_rate(tmp_path):
    trials, _ = expand(make_spec(tmp_path))
    store = ResultStore(tmp_path / "out")
    for t in trials:
        store.write(t, _ok(t, tmp_path))
    df = store.combine(trials)
    assert len(df) == len(trials) * 2
    assert set(df["status"]) == {"ok"}
    assert {"trial_hash", "config", "engine.max_num_batched_tokens", "p99_ttft_ms", "request_goodput",
            "slo_attainment", "meets_slo", "profile_id", "request_rate", "clock", "attempt_errors"} <= set(df.columns)
    assert set(df["clock"]) == {"wall"}
    assert math.isinf(df["request_rate"].max())
    assert pd.read_parquet(tmp_path / "out" / "results.parquet").equals(df)


def test_failed_trial_rows_and_retry_failed(tmp_path):
    trials, _ = expand(make_spec(tmp_path))
    store = ResultStore(tmp_path)
    store.write(trials[0], TrialResult(trials[0].hash, "failed", error="boom", attempts=2))
    rows = store.read_trial(trials[0].hash)
    assert list(rows["status"]) == ["failed", "failed"] and rows["error"].iloc[0] == "boom"
    assert store.is_done(trials[0].hash)
    assert not store.is_done(trials[0].hash, retry_failed=True)
    assert not store.is_done(trials[1].hash)


def test_rewrite_replaces_not_appends_and_no_temp_left(tmp_path):
    trials, _ = expand(make_spec(tmp_path))
    store = ResultStore(tmp_path)
    for _ in range(3):
        store.write(trials[0], _ok(trials[0], tmp_path))
    assert len(store.combine(trials)) == 2
    assert sorted(p.name for p in store.trial_dir.iterdir()) == [f"{trials[0].hash}.parquet"]


def test_damaged_or_foreign_file_counts_as_not_done(tmp_path):
    trials, _ = expand(make_spec(tmp_path))
    store = ResultStore(tmp_path)
    store.trial_dir.mkdir(parents=True)
    store.trial_path(trials[0].hash).write_bytes(b"not parquet")
    assert not store.is_done(trials[0].hash)


def test_interrupted_write_leaves_old_file(tmp_path, monkeypatch):
    trials, _ = expand(make_spec(tmp_path))
    store = ResultStore(tmp_path)
    store.write(trials[0], _ok(trials[0], tmp_path))
    before = store.trial_path(trials[0].hash).read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write(trials[0], TrialResult(trials[0].hash, "failed", error="x"))
    assert store.trial_path(trials[0].hash).read_bytes() == before
    assert len(list(store.trial_dir.iterdir())) == 1  # temp file removed
