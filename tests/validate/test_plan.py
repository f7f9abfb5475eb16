"""Validation run order (real / emulated / real per cell) and the duration estimate."""

from __future__ import annotations

import pytest

from llm_emu.validate.plan import STARTUP_S, TAIL_S, estimate_seconds, schedule


def test_aa_schedule_brackets_each_emulated_run_with_real_runs() -> None:
    runs = schedule([(1.0, 2.0), (0.25, 4.0)], repeats=2)
    assert len(runs) == 2 * 2 * 3
    first = runs[:3]
    assert [(r.kind, r.run, r.repeat) for r in first] == [("real", 0, 0), ("emulated", 0, 0), ("real", 1, 0)]
    assert {(r.burstiness, r.rate) for r in runs[:6]} == {(1.0, 2.0)}
    assert [r.repeat for r in runs[3:6]] == [1, 1, 1]


def test_schedule_without_aa() -> None:
    runs = schedule([(1.0, 2.0)], aa=False)
    assert [r.kind for r in runs] == ["real", "emulated"]


def test_estimate_counts_arrival_spans_tails_and_one_start_per_server() -> None:
    runs = schedule([(1.0, 2.0), (1.0, float("inf"))])
    expected = STARTUP_S["real"] + STARTUP_S["emulated"] + 3 * (100 / 2.0 + TAIL_S) + 3 * (100 * 0.05 + TAIL_S)
    assert estimate_seconds(runs, 100) == pytest.approx(expected)


def test_runs_above_capacity_last_until_the_backlog_is_served() -> None:
    runs = schedule([(1.0, 8.0)], aa=False)
    base = STARTUP_S["real"] + STARTUP_S["emulated"]
    assert estimate_seconds(runs, 100, capacity=2.0) == pytest.approx(base + 2 * (100 / 2.0 + TAIL_S))
