"""The search hook: a `search:` spec goes to search.runner with the orchestrator's Ray evaluator."""

from __future__ import annotations

import pandas as pd
import pytest
from sweep_factories import make_spec, sweep_args, write_spec

from orchestrator.actors import ActorResources
from orchestrator.cli import run_search_on_ray
from orchestrator.controller import ControllerOptions
from orchestrator.evaluator import RayEvaluator
from orchestrator.testing import FakeRunner

pytest.importorskip("search.evaluator")


def _request(**overrides):
    from search.evaluator import TrialRequest

    engine = {"max_model_len": 4096, **overrides}
    return TrialRequest(engine_args=engine, rates=(2.0, 8.0), overrides=overrides,
                        goodput={"ttft": 300.0}, trial_number=len(overrides))


def test_evaluator_outcomes_in_order_cached_and_failed(tmp_path, ray_local):
    spec = make_spec(tmp_path)
    requests = [_request(max_num_seqs=64), _request(max_num_seqs=128), _request()]
    evaluator = RayEvaluator(spec, tmp_path / "out", ControllerOptions(
        out_dir=str(tmp_path / "out"), resources=ActorResources(num_cpus=1), retries=0, poll_s=0.1))
    failing = evaluator.trial_for(requests[1]).hash
    evaluator.runner = FakeRunner(always_fail=(failing,))
    outcomes = evaluator.evaluate(requests)
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    assert "fake failure" in outcomes[1].error
    assert sorted(outcomes[0].metrics) == [2.0, 8.0]
    assert outcomes[0].metrics[2.0]["p99_ttft_ms"] > 0 and "slo_attainment" in outcomes[0].metrics[2.0]
    markers = tmp_path / "m"
    evaluator.runner = FakeRunner(marker_dir=str(markers))
    again = evaluator.evaluate(requests[:1])  # finished trials are reused, not run again
    assert again[0].metrics == outcomes[0].metrics and not markers.exists()
    assert len(pd.read_parquet(tmp_path / "out" / "results.parquet")) == 6


def test_search_spec_runs_through_hook(tmp_path, ray_local):
    search = {
        "objective": "slo_throughput", "rate": 4, "n_trials": 3, "parallelism": 2, "seed": 0,
        "space": {"max_num_seqs": {"type": "int", "low": 8, "high": 64, "step": 8}},
    }
    spec_path = write_spec(tmp_path, search=search, grid={})
    from orchestrator.spec import load_spec

    out = tmp_path / "out"
    rc = run_search_on_ray(load_spec(spec_path), sweep_args(str(spec_path), "-o", str(out)), FakeRunner())
    assert rc == 0
    df = pd.read_parquet(out / "results.parquet")
    assert df["trial_hash"].nunique() >= 2 and set(df["status"]) == {"ok"}
