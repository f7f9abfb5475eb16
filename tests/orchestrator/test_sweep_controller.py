"""Controller on a real local Ray cluster with fake in-actor runners (fast: no vLLM)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sweep_factories import make_spec

from orchestrator.actors import NAMESPACE, ActorResources, actor_name
from orchestrator.controller import Controller, ControllerOptions, ResourceError
from orchestrator.results import ResultStore
from orchestrator.testing import FakeRunner
from orchestrator.trials import expand


def _alive(group: int) -> bool:
    """Whether any live (non-zombie) process is in process group ``group``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def _run(tmp_path, runner, retries=1, **opts):
    trials, _ = expand(make_spec(tmp_path))
    store = ResultStore(tmp_path / "out")
    options = ControllerOptions(out_dir=str(tmp_path / "out"), resources=ActorResources(num_cpus=1),
                                retries=retries, poll_s=0.1, **opts)
    return trials, store, Controller(runner, store, options).run(trials)


def test_runs_all_trials_and_writes_results(tmp_path, ray_local):
    trials, store, results = _run(tmp_path, FakeRunner(seconds_per_rate=0.05))
    assert {r.trial_hash for r in results} == {t.hash for t in trials}
    assert all(r.status == "ok" and r.attempts == 1 and r.node for r in results)
    assert all(store.is_done(t.hash) for t in trials)


def test_failures_retried_then_recorded(tmp_path, ray_local):
    trials, _ = expand(make_spec(tmp_path))
    runner = FakeRunner(fail_first=1, always_fail=(trials[0].hash,))
    _, store, results = _run(tmp_path, runner, retries=2)
    by_hash = {r.trial_hash: r for r in results}
    assert by_hash[trials[0].hash].status == "failed"
    assert by_hash[trials[0].hash].attempts == 3
    assert "RuntimeError: fake failure of trial" in by_hash[trials[0].hash].error
    assert all(by_hash[t.hash].status == "ok" and by_hash[t.hash].attempts == 2 for t in trials[1:])
    df = store.combine(trials)
    assert len(df) == 2 * len(trials)
    # every attempt's error is kept, also for trials that succeeded on a retry
    errors = {h: json.loads(g["attempt_errors"].iloc[0]) for h, g in df.groupby("trial_hash")}
    assert errors[trials[0].hash] == [f"attempt {i}: RuntimeError: fake failure of trial {trials[0].hash}"
                                      for i in (1, 2, 3)]
    assert all(errors[t.hash] == ["attempt 1: RuntimeError: fake failure of attempt 0"] for t in trials[1:])
    assert by_hash[trials[1].hash].attempt_errors == ("attempt 1: RuntimeError: fake failure of attempt 0",)


def test_killed_actor_is_retried(tmp_path, ray_local):
    import ray

    markers = tmp_path / "markers"
    trials, _ = expand(make_spec(tmp_path))
    victim = trials[0].hash
    killed = threading.Event()

    def kill_when_started():
        marker = markers / f"{victim}.0.started"
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ray.kill(ray.get_actor(actor_name(victim, 0), namespace=NAMESPACE))
        killed.set()

    thread = threading.Thread(target=kill_when_started, daemon=True)
    thread.start()
    markers.mkdir()
    runner = FakeRunner(marker_dir=str(markers), block_first_attempt_s=30, block_only=(victim,),
                        spawn_server=True)
    _, store, results = _run(tmp_path, runner)
    thread.join(5)
    assert killed.is_set()
    by_hash = {r.trial_hash: r for r in results}
    assert by_hash[victim].status == "ok" and by_hash[victim].attempts == 2
    assert (markers / f"{victim}.1.started").exists()
    orphan = int((markers / f"{victim}.0.server").read_text())  # the killed attempt's server
    deadline = time.monotonic() + 10
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(orphan), "the server of a killed actor must not outlive it"
    df = store.combine(trials)
    assert len(df) == 2 * len(trials) and not df.duplicated(["trial_hash", "request_rate"]).any()


def test_timeout_kills_and_records(tmp_path, ray_local):
    _, _, results = _run(tmp_path, FakeRunner(block_first_attempt_s=30), retries=0, trial_timeout_s=1.0)
    assert all(r.status == "failed" and "timed out after 1 s" in r.error for r in results)


def test_missing_hardware_resource_fails_fast(tmp_path, ray_local):
    trials, _ = expand(make_spec(tmp_path, kind="real"))
    options = ControllerOptions(out_dir=str(tmp_path), resources=ActorResources(1, None, "GPU"))
    start = time.monotonic()
    with pytest.raises(ResourceError, match="need one 'GPU' per trial but the Ray cluster has none"):
        Controller(FakeRunner(), ResultStore(tmp_path), options).run(trials)
    assert time.monotonic() - start < 5


def test_oversized_trial_fails_fast(tmp_path, ray_local):
    options = ControllerOptions(out_dir=str(tmp_path), resources=ActorResources(num_cpus=8))
    with pytest.raises(ResourceError, match="no Ray node can host a trial"):
        Controller(FakeRunner(), ResultStore(tmp_path), options).run(expand(make_spec(tmp_path))[0])


def test_reused_actor_runs_the_next_trial_in_the_same_process(tmp_path, ray_local):
    """reuse_actors (virtual time): one actor process serves trial after trial; a failed attempt's actor is
    not reused, and every attempt's error is kept."""
    markers = tmp_path / "m"
    trials, _ = expand(make_spec(tmp_path))
    runner = FakeRunner(marker_dir=str(markers), always_fail=(trials[0].hash,))
    options = ControllerOptions(out_dir=str(tmp_path / "out"), resources=ActorResources(num_cpus=1), retries=1,
                                poll_s=0.1, max_parallel=1, reuse_actors=True)
    with Controller(runner, ResultStore(tmp_path / "out"), options) as controller:
        results = controller.run(trials)
    pids = {p.name: p.read_text() for p in markers.iterdir()}
    ok_pids = {pids[f"{t.hash}.0.started"] for t in trials[1:]}
    assert len(ok_pids) == 1  # the successful trials shared one actor
    assert pids[f"{trials[0].hash}.0.started"] != pids[f"{trials[0].hash}.1.started"]  # failed: fresh actor
    failed = next(r for r in results if r.trial_hash == trials[0].hash)
    assert [e.split(":")[0] for e in failed.attempt_errors] == ["attempt 1", "attempt 2"]


def test_errors_of_retried_attempts_are_kept(tmp_path, ray_local):
    _, _, results = _run(tmp_path, FakeRunner(fail_first=1))
    assert all(r.status == "ok" and r.attempts == 2 and len(r.attempt_errors) == 1 for r in results)
    assert "fake failure of attempt 0" in results[0].attempt_errors[0]
