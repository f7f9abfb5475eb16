"""ServerRunner: a trial becomes one measure-loop session with one benchmark run per rate (fake server)."""

from __future__ import annotations

import math

from sweep_factories import make_spec

from llm_emu.slo import slo_attainment
from orchestrator.runner import ServerRunner, TrialContext
from orchestrator.trials import expand
from tests.measure.fakes import Events, fake_loop, fake_result


def test_trial_runs_every_rate_in_one_server(tmp_path):
    (trial,), _ = expand(make_spec(tmp_path, grid={"max_num_seqs": [64]},
                                   workload={"num_prompts": 7, "request_rates": [2, 20, "inf"]}))
    events = Events()
    ctx = TrialContext(out_dir=str(tmp_path / "out"), attempt=0)
    rates = ServerRunner(loop=fake_loop(events))(trial, ctx)
    assert events.log == ["start", "bench 2", "reset", "bench 20", "reset", "bench inf", "stop"]
    assert [r.request_rate for r in rates] == [2.0, 20.0, math.inf]
    assert rates[1].metrics["request_throughput"] == 10.0 and "ttfts" not in rates[1].metrics
    expected = slo_attainment(fake_result(events.bench_calls[1]["workload"]), trial.slo, 7)
    assert rates[1].slo_attainment == expected and expected is not None
    call = events.bench_calls[2]
    assert call["result_dir"] == ctx.raw_dir(trial, math.inf) and call["goodput"] == trial.slo.goodput()
    assert call["workload"].num_prompts == 7 and call["tokenizer_model"] == trial.model
    assert call["server_args"] == trial.vllm_flags()
    (spec,) = events.specs
    assert spec.vllm_args == trial.vllm_flags() and spec.log_path == ctx.log_file(trial) and spec.kind == "emulated"
