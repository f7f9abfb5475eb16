"""The replay end to end: published rows through the emulator with vLLM's own client (bounded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_emu.cli import main
from llm_emu.reference.cli import read_errors_csv

pytest.importorskip("aiconfigurator_core", reason="the replay's profiles need pip install 'llm-emu[aic]'")

ROWS = ["gpustack-qwen3-8b-c1", "gpustack-qwen3-8b-c8"]  # one server configuration: one runner in virtual time


def _check(out: Path) -> None:
    errors = {r["row_id"]: r for r in read_errors_csv(out / "errors.csv")}
    assert set(errors) == set(ROWS)
    for row in errors.values():
        # A broken replay (units, wrong model or workload) is off by far more; the calibration's job is the rest.
        assert abs(float(row["ITL"])) < 40 and abs(float(row["TPOT"])) < 40, row
    text = (out / "report.md").read_text()
    assert "Mistral-v3 tokenizer stands in" in text and "| mean abs |" in text


@pytest.mark.slow
@pytest.mark.ci_e2e
def test_two_rows_in_virtual_time(tmp_path: Path) -> None:
    # the uncalibrated estimate: the replay itself is under test, not whichever calibration is shipped
    rc = main(["reference", "--rows", *ROWS, "--clock", "virtual", "--profile", "aic:{gpu}", "--max-prompts", "12",
               "--out", str(tmp_path)])
    assert rc == 0
    _check(tmp_path)


@pytest.mark.slow
def test_two_rows_on_the_wall_clock(tmp_path: Path) -> None:
    rc = main(["reference", "--rows", *ROWS, "--clock", "wall", "--profile", "aic:{gpu}", "--max-prompts", "8",
               "--out", str(tmp_path)])
    assert rc == 0
    _check(tmp_path)
