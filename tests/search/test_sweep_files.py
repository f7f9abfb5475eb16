from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.runner import task_from_sweep

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


@pytest.mark.parametrize("name", ["slo_search.yaml", "small_search.yaml"])
def test_shipped_search_specs_parse(name, tmp_path):
    doc = yaml.safe_load((SWEEPS / name).read_text())
    task = task_from_sweep(doc, tmp_path)
    assert task.search.slo is not None and task.search.space


@pytest.mark.parametrize("name", ["slo_search.yaml", "small_search.yaml"])
def test_orchestrator_spec_adapter(name, tmp_path):
    spec_mod = pytest.importorskip("orchestrator.spec")
    try:
        sweep = spec_mod.load_spec(SWEEPS / name)
    except Exception as e:  # the orchestrator's loader is being written concurrently
        pytest.skip(f"orchestrator.spec.load_spec not usable yet: {e}")
    task = task_from_sweep(sweep, tmp_path)
    assert task.search.slo.attainment == 0.9 and task.model == "llama-3.1-8b"
