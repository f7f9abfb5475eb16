"""Error-table math and report shape."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from llm_emu.validate.cli import report
from llm_emu.validate.errors import error_frame, error_table, markdown_table, signed_pct_error


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
