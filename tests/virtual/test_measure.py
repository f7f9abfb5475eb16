"""The virtual measure loop honours the measure-loop contract (one engine per session, results in order)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llm_emu.benchclient import Workload
from llm_emu.errors import EmuError
from llm_emu.measure import BenchRun, MeasureTarget, measure_loop
from llm_emu.server import ServerSpec
from llm_emu.virtual import VirtualCell, run_virtual_cells

PROFILE = "formula:base_us=8000,prefill_token_us=5,decode_req_us=20,context_token_us=0"
ARGS = ("--max-model-len", "2048", "--seed", "3")


def test_real_servers_are_refused() -> None:
    from llm_emu.virtual.host import NO_HOST
    from llm_emu.virtual.measure import virtual_spec

    with pytest.raises(EmuError, match="wall-clock"):
        virtual_spec(MeasureTarget(ServerSpec(kind="real", model="tiny-llama")), NO_HOST)


def test_llm_emu_serve_flags_are_split_off() -> None:
    from llm_emu.virtual.host import NO_HOST
    from llm_emu.virtual.measure import virtual_spec

    spec = virtual_spec(MeasureTarget(ServerSpec(kind="emulated", model="m", profile=PROFILE, vllm_args=ARGS)),
                        NO_HOST)
    assert spec["seed"] == 3 and spec["vllm_args"] == ["--max-model-len", "2048"]


@pytest.mark.slow
def test_session_matches_batch_runner(tmp_path: Path) -> None:
    runs = [BenchRun(Workload(num_prompts=30, request_rate=5.0, seed=2), result_dir=tmp_path / "r"),
            BenchRun(Workload(num_prompts=30, request_rate=math.inf, seed=2), goodput={"ttft": 100.0})]
    target = MeasureTarget(ServerSpec(kind="emulated", model="llama-3.1-8b", profile=PROFILE, vllm_args=ARGS,
                                      log_path=tmp_path / "runner.log"))
    got = measure_loop("virtual").measure(target, runs)
    batch = run_virtual_cells("llama-3.1-8b", PROFILE, ARGS[:2], [VirtualCell(r.workload, r.goodput) for r in runs],
                              seed=3, out_dir=tmp_path / "batch", host=measure_loop("virtual").host_model())
    for m, b in zip(got, batch, strict=True):
        assert m.result["mean_ttft_ms"] == b["mean_ttft_ms"] and m.result["ttfts"] == b["ttfts"]
    assert Path(got[0].result["result_file"]).is_file()
    assert got[1].result["request_goodput"] is not None and got[0].startup_s > 0
