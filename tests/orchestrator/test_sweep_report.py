"""Summary table, dry-run plan text, plots and report files (from fake results; no Ray, no vLLM)."""

from __future__ import annotations

import argparse

import pytest
from sweep_factories import make_spec

from llm_emu.errors import SpecError
from llm_emu.fsutil import atomic_write_json
from orchestrator.cli import report_main
from orchestrator.report import write_report
from orchestrator.results import ResultStore
from orchestrator.runner import TrialContext, TrialResult
from orchestrator.summary import best_configs, estimate_total_s, fmt_duration, plan_text, summary_text
from orchestrator.testing import FakeRunner
from orchestrator.trials import expand


def _results(tmp_path, **overrides):
    spec = make_spec(tmp_path, **overrides)
    trials, pruned = expand(spec)
    store = ResultStore(tmp_path / "out")
    for t in trials[:-1]:
        store.write(t, TrialResult(t.hash, "ok", FakeRunner()(t, TrialContext(str(tmp_path), 0))))
    store.write(trials[-1], TrialResult(trials[-1].hash, "failed", error="ServerError: boom", attempts=2))
    atomic_write_json(tmp_path / "out" / "sweep.json",
                      {"name": "t", "pruned": [{"config": p.label, "reason": p.reason} for p in pruned]})
    return spec, trials, pruned, store.combine(trials)


def test_best_configs_only_rows_meeting_slo(tmp_path):
    _, _, _, df = _results(tmp_path)
    best = best_configs(df)
    assert len(best) == 2  # the failed trial is absent
    met = df[df["meets_slo"].fillna(False).astype(bool)]
    assert set(best["trial_hash"]) <= set(met["trial_hash"])
    assert best["request_goodput"].is_monotonic_decreasing


def test_summary_lists_failures_and_counts(tmp_path):
    _, _, _, df = _results(tmp_path)
    text = summary_text(df, n_pruned=1)
    assert text.startswith("3 trials: 2 ok, 1 failed, 1 pruned")
    assert "ServerError: boom" in text and "best configs meeting the SLOs" in text


def test_summary_without_slo_ranks_by_throughput(tmp_path):
    _, _, _, df = _results(tmp_path, slo=None)
    assert "best configs by throughput" in summary_text(df)


def test_plan_text_and_estimate(tmp_path):
    spec = make_spec(tmp_path)
    trials, pruned = expand(spec)
    text = plan_text(spec, ["grid: 4 points"], trials, pruned, {trials[0].hash}, parallel=2, trial_s=100)
    assert text.count("[done]") == 1 and text.count("[run ]") == 2 and "[skip]" in text
    assert "estimated wall time 1m 40s" in text
    assert estimate_total_s(5, 60, 2) == 180 and fmt_duration(3725) == "1h 02m"


def test_report_files(tmp_path):
    _results(tmp_path)
    md = write_report(tmp_path / "out")
    text = md.read_text()
    for png in ("latency_vs_throughput.png", "goodput_vs_rate.png", "slo_attainment_vs_rate.png"):
        assert (tmp_path / "out" / png).stat().st_size > 10_000
        assert f"]({png})" in text
    assert "## Pruned configs" in text and "smaller than max_model_len" in text
    assert "ServerError: boom" in text
    assert "<img src='goodput_vs_rate.png'" in (tmp_path / "out" / "report.html").read_text()


def test_report_main_needs_results(tmp_path):
    with pytest.raises(SpecError, match=r"has no results\.parquet"):
        report_main(argparse.Namespace(out_dir=str(tmp_path)))
