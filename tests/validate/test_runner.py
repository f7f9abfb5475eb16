"""The validation runner over fake servers: both sides up once, runs interleaved, each on disk, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llm_emu.benchclient import Workload
from llm_emu.capture.cpuset import ServerPinning
from llm_emu.measure.process import ServerLoop
from llm_emu.server import ServerSpec
from llm_emu.validate import cli
from llm_emu.validate.plan import schedule
from llm_emu.validate.runner import pending, run_plan
from tests.measure.fakes import Events, FakeServer, fake_result


class _SideServer(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://{self.spec.kind}:1"


def _loop(events: Events, fail: tuple[str, float] | None = None) -> ServerLoop:
    def bench(base_url: str, model: str, workload: Workload, **kw: Any) -> dict[str, Any]:
        kind = base_url.split("//")[1].split(":")[0]
        events.log.append(f"bench {kind} {workload.request_rate:g}")
        if fail == (kind, workload.request_rate):
            raise RuntimeError("client died")
        return fake_result(workload)

    return ServerLoop(server_factory=lambda spec: _SideServer(spec, events), benchmark=bench)


def _args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(profile=str(tmp_path), model="tiny-llama", dataset="random", num_prompts=5, seed=3,
                              emu_seed=0, vllm_args=[], no_step_trace=True)


def _targets(tmp_path: Path) -> dict[str, Any]:
    from llm_emu.measure import MeasureTarget

    return {k: MeasureTarget(server=ServerSpec(kind=k, model="tiny-llama", profile="p")) for k in ("real", "emulated")}


def test_both_servers_start_once_and_runs_interleave(tmp_path: Path) -> None:
    events = Events()
    plan = schedule([(1.0, 2.0), (1.0, 4.0)])
    run_plan(plan, _targets(tmp_path), cli.bench_run(_args(tmp_path), tmp_path), tmp_path, _loop(events))
    assert events.log[:2] == ["start", "start"] and events.log[-2:] == ["stop", "stop"]
    benches = [e for e in events.log if e.startswith("bench")]
    assert benches == ["bench real 2", "bench emulated 2", "bench real 2", "bench real 4", "bench emulated 4",
                       "bench real 4"]
    assert events.log.count("reset") == 6 - 2  # every run after a session's first starts with an empty cache
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert list(zip(df["kind"], df["rate"], df["run"], strict=True)) == [
        ("real", 2.0, 0), ("emulated", 2.0, 0), ("real", 2.0, 1), ("real", 4.0, 0), ("emulated", 4.0, 0),
        ("real", 4.0, 1)]
    assert "ttfts" not in df.columns and (df["completed"] == 5).all()


def test_a_rerun_resumes_whole_cells(tmp_path: Path) -> None:
    plan = schedule([(1.0, 2.0), (1.0, 4.0)])
    make = cli.bench_run(_args(tmp_path), tmp_path)
    with pytest.raises(RuntimeError, match="client died"):
        run_plan(plan, _targets(tmp_path), make, tmp_path, _loop(Events(), fail=("emulated", 4.0)))
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 4  # cell 2/s complete + real#0 of 4/s
    todo = pending(plan, tmp_path)
    assert [(r.kind, r.rate, r.run) for r in todo] == [("real", 4.0, 0), ("emulated", 4.0, 0), ("real", 4.0, 1)]
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 3  # the partial cell's row is dropped
    events = Events()
    run_plan(todo, _targets(tmp_path), make, tmp_path, _loop(events))
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert len(df) == 6 and pending(plan, tmp_path) == []


def test_server_specs_trace_both_sides_by_default(tmp_path: Path) -> None:
    from llm_emu.profile.pack import save_pack
    from tests.factories import make_pack

    save_pack(make_pack(), tmp_path / "pack")
    args = argparse.Namespace(**{**vars(_args(tmp_path)), "profile": str(tmp_path / "pack"), "no_step_trace": False})
    pin = ServerPinning("none")
    real, emu = (cli.server_spec(k, args, pin, tmp_path) for k in ("real", "emulated"))
    assert "llm_emu.capture.worker.CPURecordingWorker" in real.vllm_args
    assert "--trace" in emu.vllm_args
    quiet = argparse.Namespace(**{**vars(args), "no_step_trace": True})
    assert "--trace" not in cli.server_spec("emulated", quiet, pin, tmp_path).vllm_args


def test_steal_seconds_reads_the_hypervisors_column(tmp_path) -> None:
    import os

    from llm_emu.validate.runner import machine_cpu_seconds, steal_seconds

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 1000 5 0 2 123 0 0\ncpu0 50 0 25 500 2 0 1 60 0 0\n")
    assert steal_seconds(str(stat)) == 123 / os.sysconf("SC_CLK_TCK")
    # busy: user + nice + system + irq + softirq (idle, iowait and steal are not)
    assert machine_cpu_seconds(str(stat))[0] == 152 / os.sysconf("SC_CLK_TCK")
    stat.write_text("cpu  100 0 50 1000\n")  # a kernel without the column
    assert steal_seconds(str(stat)) != steal_seconds(str(stat))  # NaN
    assert steal_seconds(str(tmp_path / "missing")) != steal_seconds(str(tmp_path / "missing"))
