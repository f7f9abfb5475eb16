from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.spec import load_spec
from search.task import task_from_sweep

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


@pytest.mark.parametrize("name", ["slo_search.yaml", "small_search.yaml"])
def test_shipped_search_specs_load(name, tmp_path):
    task = task_from_sweep(load_spec(SWEEPS / name), tmp_path)
    assert task.slo is not None and task.slo.attainment == 0.9 and task.search.space
    assert task.model == "llama-3.1-8b"


def test_overnight_search_runs_in_virtual_time_and_rechecks_in_wall_clock():
    spec = load_spec(SWEEPS / "slo_search.yaml")
    assert spec.clock == "virtual" and spec.search is not None and spec.search.verify_top_k > 0
