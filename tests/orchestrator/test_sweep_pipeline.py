"""One pipeline for grid and search: the executor, pruning and flags in search mode, exit codes, the one SLO."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sweep_factories import BASE_SPEC, make_spec, sweep_args, write_spec

from orchestrator.executor import ExecutionOptions, TrialExecutor
from orchestrator.pipeline import SweepOptions, run_sweep
from orchestrator.runner import ServerRunner
from orchestrator.spec import load_spec
from orchestrator.testing import FakeMeasureLoop, FakeRunner
from orchestrator.trials import TrialFactory
from search.evaluator import TrialRequest

SEARCH = {
    "objective": "slo_throughput", "rate": 2, "n_trials": 4, "parallelism": 2, "sampler": "grid", "baseline": False,
    "space": {"max_num_seqs": [32, 64, 512, 4096]},
}


def _opts(out, *flags):
    return SweepOptions.from_args(sweep_args("x.yaml", "-o", str(out), "--no-progress", *flags))


def _request(number, **overrides):
    return TrialRequest({"max_model_len": 4096, **overrides}, (2.0, 8.0), overrides=overrides, number=number)


def _search_spec(tmp_path, **top):
    return load_spec(write_spec(tmp_path, grid={}, search=SEARCH, **top))


def _study(out):
    return optuna.load_study(study_name="t-search", storage=f"sqlite:///{out / 'study.db'}")


def test_executor_prunes_fails_caches_and_answers_in_order(tmp_path, ray_local):
    spec = make_spec(tmp_path)
    requests = [_request(0, max_num_seqs=64), _request(1, max_num_seqs=128),
                _request(2, enable_chunked_prefill=False, max_num_batched_tokens=2048), _request(3)]
    failing = TrialFactory(spec).trial(requests[1]).hash
    with TrialExecutor(spec, tmp_path / "out", ExecutionOptions(), FakeRunner(always_fail=(failing,))) as ex:
        outcomes = ex.evaluate(requests)
    assert [o.status for o in outcomes] == ["ok", "failed", "pruned", "ok"]
    assert "fake failure" in outcomes[1].error and "smaller than max_model_len" in outcomes[2].error
    row = outcomes[0].metrics[2.0]
    assert sorted(outcomes[0].metrics) == [2.0, 8.0] and row["clock"] == "wall" and 0 < row["slo_attainment"] <= 1
    markers = tmp_path / "m"
    with TrialExecutor(spec, tmp_path / "out", ExecutionOptions(), FakeRunner(marker_dir=str(markers))) as again:
        assert again.evaluate(requests[:1])[0].metrics == outcomes[0].metrics
    assert not markers.exists()  # finished trials are reused, not run again
    failed = pd.read_parquet(tmp_path / "out" / "results" / f"{failing}.parquet")
    assert json.loads(failed["attempt_errors"].iloc[0]) == [
        f"attempt 1: RuntimeError: fake failure of trial {failing}", f"attempt 2: RuntimeError: fake failure of trial "
        f"{failing}"]


def test_search_prunes_like_the_grid_and_fails_nonzero(tmp_path, ray_local, capsys):
    """Built-in pruning and the top-level constraints apply to search proposals; a failed trial exits 1."""
    rule = [{"rule": "max_num_seqs <= 128", "reason": "user rule"}]
    out = tmp_path / "out"
    search = {**SEARCH, "space": {"max_num_seqs": [32, 64, 200, 4096]}}
    spec = load_spec(write_spec(tmp_path, grid={}, search=search, constraints=rule,
                                engine_args={"max_model_len": 4096, "max_num_batched_tokens": 256}))
    failing = TrialFactory(spec).trial(TrialRequest({"max_model_len": 4096, "max_num_batched_tokens": 256,
                                                     "max_num_seqs": 64}, (2.0,))).hash
    rc = run_sweep(spec, _opts(out, "--no-report"), FakeRunner(always_fail=(failing,)))
    assert rc == 1
    trials = {t.params["max_num_seqs"]: t for t in _study(out).get_trials()}
    assert trials[32].state == TrialState.COMPLETE and trials[64].state == TrialState.FAIL
    assert "fake failure" in trials[64].user_attrs["error"]
    assert trials[4096].state == TrialState.PRUNED and "smaller than max_num_seqs (4096)" in \
        trials[4096].user_attrs["infeasible"][0]
    assert trials[200].state == TrialState.PRUNED and trials[200].user_attrs["infeasible"] == ["user rule"]
    printed = capsys.readouterr().out
    assert "2 trials: 1 ok, 1 failed, 2 pruned" in printed and f"failed {failing}" in printed
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["proposal_source"] == "search" and len(manifest["pruned"]) == 2
    assert not (out / "search.md").exists() and not (out / "report.md").exists()  # --no-report


def test_search_flags_resume_retry_failed_no_resume(tmp_path, ray_local):
    spec = _search_spec(tmp_path)
    out = tmp_path / "out"
    failing = TrialFactory(spec).trial(TrialRequest({"max_model_len": 4096, "max_num_seqs": 64}, (2.0,))).hash
    assert run_sweep(spec, _opts(out), FakeRunner(always_fail=(failing,))) == 1
    assert (out / "search.md").is_file() and (out / "report.md").is_file()
    m1, m2, m3 = tmp_path / "m1", tmp_path / "m2", tmp_path / "m3"
    assert run_sweep(spec, _opts(out, "--no-report"), FakeRunner(marker_dir=str(m1))) == 1  # resume: nothing to do
    assert not m1.exists()
    assert run_sweep(spec, _opts(out, "--no-report", "--retry-failed"), FakeRunner(marker_dir=str(m2))) == 0
    assert {p.name.split(".")[0] for p in m2.iterdir()} == {failing}  # only the failed config ran again
    assert len(pd.read_parquet(out / "results.parquet")["trial_hash"].unique()) == 4  # the whole study's trials
    assert run_sweep(spec, _opts(out, "--no-report", "--no-resume"), FakeRunner(marker_dir=str(m3))) == 0
    assert len({p.name.split(".")[0] for p in m3.iterdir()}) == 4  # everything again, in a fresh study
    assert len(_study(out).get_trials()) == 4


def test_slo_attainment_identical_in_grid_and_search(tmp_path, ray_local):
    """The same config and rate give the same slo_attainment (computed once, in the trial) in both modes."""
    common = {"workload": {"num_prompts": 40, "request_rates": [8]}, "slo": {"ttft_ms": 100, "attainment": 0.5}}
    runner = ServerRunner(loop=FakeMeasureLoop())
    grid = load_spec(write_spec(tmp_path, grid={"max_num_seqs": [32]}, **common))
    assert run_sweep(grid, _opts(tmp_path / "grid", "--no-report"), runner) == 0
    search = {**SEARCH, "rate": 8, "n_trials": 1, "space": {"max_num_seqs": [32]}}
    spec = load_spec(write_spec(tmp_path, grid={}, search=search, **common))
    assert run_sweep(spec, _opts(tmp_path / "search", "--no-report"), runner) == 0
    by_grid = pd.read_parquet(tmp_path / "grid" / "results.parquet")["slo_attainment"].tolist()
    by_search = pd.read_parquet(tmp_path / "search" / "results.parquet")["slo_attainment"].tolist()
    assert by_grid == by_search and 0 < by_grid[0] < 1  # a partial attainment, not a trivial 1.0
    (trial,) = optuna.load_study(study_name="t-search",
                                 storage=f"sqlite:///{tmp_path / 'search' / 'study.db'}").get_trials()
    assert trial.user_attrs["measurements"][0]["slo_attainment"] == by_grid[0]
    assert trial.user_attrs["constraints"] == [0.5 - by_grid[0]]


def test_grid_resume_dry_run_and_exit_codes(tmp_path, ray_local, capsys):
    spec_path = write_spec(tmp_path)
    spec = load_spec(spec_path)
    out = tmp_path / "out"
    assert run_sweep(spec, _opts(out, "--no-report"), FakeRunner()) == 0
    first = pd.read_parquet(out / "results.parquet")
    markers = tmp_path / "m"
    assert run_sweep(spec, _opts(out, "--no-report"), FakeRunner(marker_dir=str(markers))) == 0
    assert not markers.exists()  # nothing re-run
    assert pd.read_parquet(out / "results.parquet").equals(first)
    capsys.readouterr()
    assert run_sweep(spec, _opts(out, "--dry-run"), FakeRunner()) == 0
    text = capsys.readouterr().out
    assert text.count("[done]") == 3 and text.count("[skip]") == 1 and "estimated wall time" in text
    hashes = first["trial_hash"].unique().tolist()
    assert run_sweep(spec, _opts(out, "--no-report", "--no-resume"), FakeRunner(always_fail=(hashes[0],))) == 1


def test_dry_run_writes_nothing(tmp_path, capsys):
    """--dry-run plans a grid or a search, starts nothing (no Ray) and writes nothing."""
    for name, extra in (("grid", {}), ("search", {"grid": {}, "search": SEARCH})):
        spec = load_spec(write_spec(tmp_path, **extra))
        out = tmp_path / name
        assert run_sweep(spec, _opts(out, "--dry-run"), FakeRunner()) == 0
        assert not out.exists()
    assert "search: slo_throughput" in capsys.readouterr().out


@pytest.mark.parametrize("clock", ["wall", "virtual"])
def test_trial_key_covers_clock_and_host_model(tmp_path, clock):
    spec = load_spec(write_spec(tmp_path, clock=clock))
    other = load_spec(write_spec(tmp_path, clock="virtual" if clock == "wall" else "wall"))
    request = TrialRequest(dict(BASE_SPEC["engine_args"]), (2.0,))
    a, b = TrialFactory(spec).trial(request), TrialFactory(other).trial(request)
    assert a.hash != b.hash and a.clock == clock
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"step_base_s": 0.0002, "source": "test"}))
    with_host = load_spec(write_spec(tmp_path, clock="virtual", host_model=str(host)))
    no_host = load_spec(write_spec(tmp_path, clock="virtual", host_model="none"))
    before = TrialFactory(with_host).trial(request).hash
    assert TrialFactory(no_host).trial(request).hash != before
    host.write_text(json.dumps({"step_base_s": 0.0003, "source": "test"}))  # the file's numbers are the key
    assert TrialFactory(with_host).trial(request).hash != before
