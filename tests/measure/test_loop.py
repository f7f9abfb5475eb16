"""The measure loop with a fake server and client: order, resets, callbacks, pinning, teardown, registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_emu.benchclient import Workload
from llm_emu.errors import EmuError
from llm_emu.measure import BenchRun, Measurement, MeasureTarget, available_loops, measure_loop, register_loop
from llm_emu.measure.process import ServerLoop
from llm_emu.server import ServerSpec
from tests.measure.fakes import Events, FakePinning, fake_loop

SPEC = ServerSpec(kind="emulated", model="tiny-llama", profile="formula:", vllm_args=("--tokenizer-mode", "auto"))


def _runs(tmp_path: Path, *rates: float) -> list[BenchRun]:
    return [BenchRun(Workload(num_prompts=3 + i, request_rate=r), goodput={"ttft": 100.0},
                     result_dir=tmp_path / f"r{i}", label=f"rate={r:g}") for i, r in enumerate(rates)]


def test_runs_in_order_with_resets_between(tmp_path: Path) -> None:
    events = Events()
    runs = _runs(tmp_path, 2, 4, float("inf"))
    out = fake_loop(events).measure(MeasureTarget(SPEC, tokenizer_model="tok"), runs)
    assert events.log == ["start", "bench 2", "reset", "bench 4", "reset", "bench inf", "stop"]
    assert [m.run for m in out] == runs and [m.index for m in out] == [0, 1, 2]
    assert [m.result["completed"] for m in out] == [3, 4, 5]
    assert all(m.startup_s == 1.5 and m.wall_s >= 0 for m in out)
    call = events.bench_calls[1]
    assert (call["model"], call["tokenizer_model"], call["goodput"]) == ("served-tiny-llama", "tok", {"ttft": 100.0})
    assert call["result_dir"] == tmp_path / "r1" and call["extra_args"] == ()
    assert call["server_args"] == SPEC.vllm_args


def test_no_reset_when_asked_and_tokenizer_defaults_to_the_model(tmp_path: Path) -> None:
    events = Events()
    fake_loop(events).measure(MeasureTarget(SPEC, reset_prefix_cache=False), _runs(tmp_path, 1, 2))
    assert "reset" not in events.log
    assert events.bench_calls[0]["tokenizer_model"] == "tiny-llama"


def test_each_result_is_handed_over_before_the_next_run_and_a_crash_stops_the_server(tmp_path: Path) -> None:
    events = Events(fail_at_rate=4)
    seen: list[Measurement] = []

    def persist(m: Measurement) -> None:
        events.log.append(f"persist {m.run.workload.request_rate:g}")
        seen.append(m)

    with pytest.raises(RuntimeError, match="rate 4"):
        fake_loop(events).measure(MeasureTarget(SPEC), _runs(tmp_path, 2, 4, 8), on_result=persist)
    assert events.log == ["start", "bench 2", "persist 2", "reset", "bench 4", "stop"]
    assert [m.result["completed"] for m in seen] == [3]


def test_pinning_wraps_the_server_and_places_it_once_healthy(tmp_path: Path) -> None:
    events = Events()
    target = MeasureTarget(SPEC, pinning=FakePinning(events))
    with fake_loop(events).open(target) as session:
        assert session.pinned == {4242: "device"} and session.startup_s == 1.5
        session.run_all(_runs(tmp_path, 2), progress="test")
    assert events.log == ["pin client", "start", "place served-tiny-llama", "bench 2", "stop", "unpin client"]


def test_session_counts_runs_across_calls(tmp_path: Path) -> None:
    events = Events()
    with fake_loop(events).open(MeasureTarget(SPEC)) as session:
        first = session.run(_runs(tmp_path, 2)[0])
        second = session.run(_runs(tmp_path, 3)[0])
    assert (first.index, second.index, session.runs_done) == (0, 1, 2)
    assert events.log == ["start", "bench 2", "reset", "bench 3", "stop"]


def test_registry() -> None:
    assert "server" in available_loops()
    assert isinstance(measure_loop(), ServerLoop)
    with pytest.raises(EmuError, match=r"valid loops are \['server'"):
        measure_loop("nope")
    with pytest.raises(EmuError, match="already registered"):
        register_loop("server", "x:Y")
