"""Error-table math and report shape."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_emu.validate.errors import cell_stats, error_frame, signed_pct_error
from llm_emu.validate.report import report
from llm_emu.validate.tables import error_table, goal_markdown, goal_verdict, markdown_table, noise_markdown


def test_signed_pct_error() -> None:
    assert signed_pct_error(110.0, 100.0) == pytest.approx(10.0)
    assert signed_pct_error(90.0, 100.0) == pytest.approx(-10.0)
    assert math.isnan(signed_pct_error(1.0, 0.0))
    assert math.isnan(signed_pct_error(float("nan"), 1.0))


def _results() -> pd.DataFrame:
    rows = []
    for burst in (1.0, 0.25):
        for rate in (2.0, 8.0):
            base = {"burstiness": burst, "rate": rate, "mean_ttft_ms": 10.0 * rate, "p99_ttft_ms": 50.0,
                    "mean_tpot_ms": 4.0, "p99_tpot_ms": 8.0, "mean_itl_ms": 4.0, "p99_itl_ms": 9.0,
                    "mean_e2el_ms": 400.0, "p99_e2el_ms": 900.0, "output_throughput": 100.0 * rate}
            rows.append({"kind": "real", **base})
            emu = dict(base, mean_ttft_ms=base["mean_ttft_ms"] * 1.05, output_throughput=base["output_throughput"]
                       * 0.99, mean_tpot_ms=4.0 * (1.02 if burst == 1.0 else 0.97))
            rows.append({"kind": "emulated", **emu})
    return pd.DataFrame(rows)


def test_error_frame_and_table() -> None:
    errors = error_frame(_results())
    assert len(errors) == 4 * 9
    wide = error_table(errors)
    assert wide.index[0] == "TTFT mean"
    assert wide.loc["TTFT mean", "max |err|"] == pytest.approx(5.0)
    assert wide.loc["TPOT mean", "Poisson 2/s"] == pytest.approx(2.0)
    assert wide.loc["TPOT mean", "bursty g=0.25 8/s"] == pytest.approx(-3.0)
    assert wide.loc["TPOT mean", "max |err|"] == pytest.approx(3.0)
    assert wide.loc["Output throughput", "max |err|"] == pytest.approx(1.0)
    assert list(wide.columns)[:2] == ["Poisson 2/s", "Poisson 8/s"]
    md = markdown_table(wide)
    assert "| TTFT mean | +5.0 | +5.0 | +5.0 | +5.0 | 5.0 | <= 4 not met |" in md
    assert "| Output throughput | -1.0" in md and "<= 1 met" in md


def test_missing_side_gives_empty_table() -> None:
    res = _results()
    errors = error_frame(res[res["kind"] == "real"])
    assert errors.empty
    assert "no cells" in markdown_table(error_table(errors))


def test_report_writes_markdown_parquet_and_png(tmp_path: Path) -> None:
    _results().to_parquet(tmp_path / "results.parquet", index=False)
    text = report(tmp_path, "unit")
    assert "TTFT mean" in text
    assert (tmp_path / "errors.parquet").is_file() and (tmp_path / "errors.md").is_file()
    assert (tmp_path / "validation.png").stat().st_size > 10_000


def test_cell_stats_noise_floor_and_interval() -> None:
    st = cell_stats([2.0, 4.0], [3.0, -4.0])
    assert st["err_pct"] == pytest.approx(3.0)
    assert st["err_ci95"] == pytest.approx(12.706 * math.sqrt(2.0) / math.sqrt(2), rel=1e-3)  # t(1) * sd / sqrt(K)
    assert st["aa_pct"] == pytest.approx(math.sqrt((9 + 16) / 2))
    assert st["floor_pct"] == pytest.approx(2 * math.sqrt(3 / 8) * math.sqrt(12.5))
    assert math.isnan(cell_stats([1.0], [math.nan])["floor_pct"])


def _aa_results(repeats: int) -> pd.DataFrame:
    """Per repeat: real 100, emulated 103, real 102 (mean TTFT); throughput identical on all runs."""
    rows = []
    for k in range(repeats):
        for run, (kind, ttft) in enumerate([("real", 100.0), ("emulated", 103.0 + k), ("real", 102.0)]):
            rows.append({"kind": kind, "burstiness": 1.0, "rate": 1.0, "repeat": k, "run": 1 if run == 2 else 0,
                         "mean_ttft_ms": ttft, "output_throughput": 50.0})
    return pd.DataFrame(rows)


def test_error_frame_uses_both_real_runs_and_gives_a_verdict() -> None:
    errors = error_frame(_aa_results(1)).set_index("metric")
    ttft = errors.loc["TTFT mean"]
    assert ttft["real"] == pytest.approx(101.0) and ttft["err_pct"] == pytest.approx(100 * 2 / 101)
    assert ttft["aa_pct"] == pytest.approx(2.0)
    assert ttft["floor_pct"] == pytest.approx(2 * math.sqrt(3 / 4) * 2.0)
    assert ttft["verdict"] == "within"  # 1.98 % <= 3.46 %
    thr = errors.loc["Output throughput"]
    assert thr["err_pct"] == 0.0 and thr["floor_pct"] == 0.0 and thr["verdict"] == "within"


def test_repeats_give_mean_and_interval() -> None:
    errors = error_frame(_aa_results(3)).set_index("metric")
    ttft = errors.loc["TTFT mean"]
    errs = [100 * (103 + k - 101) / 101 for k in range(3)]
    assert ttft["repeats"] == 3 and ttft["err_pct"] == pytest.approx(np.mean(errs))
    assert ttft["err_ci95"] == pytest.approx(4.303 * np.std(errs, ddof=1) / math.sqrt(3), rel=1e-3)
    assert ttft["verdict"] == "outside"  # 2.97 % > floor 2 * sqrt(1/4) * 2 = 2 %


def test_noise_table_marks_verdict_and_floor_above_goal() -> None:
    md = noise_markdown(error_frame(_aa_results(1)))
    assert "| TTFT mean | 3.5 in | 1/1 |" in md
    assert "| Output throughput | 0.0 in | 1/1 |" in md
    assert "no A/A pairs" in noise_markdown(error_frame(_results()))


def test_goal_verdict_met_floor_missed() -> None:
    assert goal_verdict(-3.9, 1.0, 4.0) == "met"
    assert goal_verdict(6.0, 10.0, 4.0) == "floor"  # above the goal, within a floor above it
    assert goal_verdict(6.0, 3.0, 4.0) == "MISSED"  # the floor is below the goal: the cell resolves it
    assert goal_verdict(12.0, 10.0, 4.0) == "MISSED"  # outside a floor that is above the goal
    assert goal_verdict(6.0, math.nan, 4.0) == "MISSED"  # no A/A pair: nothing excuses it
    assert goal_verdict(math.nan, 1.0, 4.0) == "n/a"


def test_goal_table_per_cell_and_counts() -> None:
    """TTFT: error +2.0 %, floor 3.5 % (goal 4): met. Real runs 100 and 110, emulated 112: +6.7 %, floor 17 %:
    above the goal, within a floor above it. Emulated 140: +33 %, outside the floor: missed."""
    res = _aa_results(1)
    md = goal_markdown(error_frame(res))
    assert "| TTFT mean | met | <= 4 | 1/0/0 |" in md
    res.loc[res["kind"] == "emulated", "mean_ttft_ms"] = 112.0
    res.loc[(res["kind"] == "real") & (res["run"] == 1), "mean_ttft_ms"] = 110.0
    md = goal_markdown(error_frame(res))
    assert "| TTFT mean | floor | <= 4 | 0/1/0 |" in md
    res.loc[res["kind"] == "emulated", "mean_ttft_ms"] = 140.0  # +33 %: outside the 17 % floor
    assert "| TTFT mean | MISSED | <= 4 | 0/0/1 |" in goal_markdown(error_frame(res))
    assert "no cells" in goal_markdown(error_frame(res[res["kind"] == "real"]))


def test_report_has_the_goal_section(tmp_path: Path) -> None:
    _aa_results(1).to_parquet(tmp_path / "results.parquet", index=False)
    text = report(tmp_path, "unit")
    assert "## Against the goals" in text and "| TTFT mean | met |" in text
