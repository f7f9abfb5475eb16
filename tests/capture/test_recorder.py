"""Capture recording without a server: vLLM's real SchedulerOutput dataclasses -> JSON lines -> pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vllm.sampling_params import SamplingParams
from vllm.v1.core.sched.output import CachedRequestData, NewRequestData, SchedulerOutput

from llm_emu.capture.cli import write_pack
from llm_emu.capture.plan import capture_plan
from llm_emu.capture.recorder import KEY, WORKER_FILE, additional_config, capture_dir, read_requests, read_steps
from llm_emu.capture.worker import StepRecorder
from llm_emu.errors import EmuError
from llm_emu.profile.pack import load_pack


def _new(req_id: str, prompt_len: int, max_tokens: int) -> NewRequestData:
    return NewRequestData(req_id=req_id, prompt_token_ids=list(range(prompt_len)), mm_features=[],
                          sampling_params=SamplingParams(max_tokens=max_tokens), pooling_params=None,
                          block_ids=([],), num_computed_tokens=0, lora_request=None)


def _cached(items: list[tuple[str, int, int]]) -> CachedRequestData:
    return CachedRequestData(req_ids=[i[0] for i in items], resumed_req_ids=set(), new_token_ids=[],
                             all_token_ids={}, new_block_ids=[None] * len(items),
                             num_computed_tokens=[i[1] for i in items], num_output_tokens=[i[2] for i in items])


def _out(new: list[NewRequestData], cached: CachedRequestData, sched: dict[str, int],
         finished: set[str] | None = None) -> SchedulerOutput:
    return SchedulerOutput(scheduled_new_reqs=new, scheduled_cached_reqs=cached, num_scheduled_tokens=sched,
                           total_num_scheduled_tokens=sum(sched.values()), scheduled_spec_decode_tokens={},
                           scheduled_encoder_inputs={}, finished_req_ids=finished or set(),
                           free_encoder_mm_hashes=[])


def _steps(tmp_path: Path) -> StepRecorder:
    rec = StepRecorder(tmp_path, max_model_len=4096)
    # step 1: a 1000-token prompt in two chunks, with "b" (prompt 10, max_tokens 2) prefilling whole
    rec.record(_out([_new("a", 1000, 3), _new("b", 10, 2)], _cached([]), {"a": 512, "b": 10}), 0.010, "sync")
    # step 2: rest of a's prompt (token due), b decodes its 2nd token (-> length)
    rec.record(_out([], _cached([("a", 512, 0), ("b", 10, 1)]), {"a": 488, "b": 1}), 0.008, "sync")
    # step 3: a decodes; b finished (reported in this output)
    rec.record(_out([], _cached([("a", 1000, 1)]), {"a": 1}, finished={"b"}), 0.004, "sync")
    # an empty step announces a's finish after 2 of 3 tokens (stopped early: EOS)
    rec.update(_out([], _cached([]), {}, finished={"a"}))
    rec.close()
    return rec


def test_features_and_latency_from_real_scheduler_outputs(tmp_path: Path) -> None:
    rec = _steps(tmp_path)
    assert rec.num_steps == 3
    steps = read_steps(tmp_path)
    assert list(steps["num_prefill_tokens"]) == [522, 488, 0]
    assert list(steps["num_prefill_reqs"]) == [2, 1, 0]
    assert list(steps["num_decode_reqs"]) == [0, 1, 1]
    assert list(steps["decode_context_tokens"]) == [0, 11, 1001]
    assert list(steps["prefill_context_tokens"]) == [0, 512, 0]
    assert list(steps["latency_us"]) == pytest.approx([10000.0, 8000.0, 4000.0])
    assert set(steps["mode"]) == {"sync"}


def test_finish_reasons_from_sampled_tokens(tmp_path: Path) -> None:
    _steps(tmp_path)
    req = read_requests(tmp_path)
    rows = {int(r.prompt_len): (int(r.output_len), r.finish_reason) for r in req.itertuples()}
    assert rows == {10: (2, "length"), 1000: (2, "stop")}


def test_jsonl_survives_a_cut_line(tmp_path: Path) -> None:
    _steps(tmp_path)
    with open(tmp_path / "steps.jsonl", "a") as fh:
        fh.write('{"num_prefill_tokens": 3, "num_pre')  # a kill mid-write
    assert len(read_steps(tmp_path)) == 3


def test_additional_config_roundtrip(tmp_path: Path) -> None:
    class Cfg:
        additional_config = json.loads(additional_config(tmp_path))

    assert capture_dir(Cfg()) == tmp_path.resolve()
    Cfg.additional_config = {}
    assert capture_dir(Cfg()) is None
    assert KEY == "llm_emu_capture"


def _worker_info() -> dict[str, object]:
    return {
        "engine": {"block_size": 128, "async_scheduling": False, "max_num_batched_tokens": 2048,
                   "max_num_seqs": 128, "enable_chunked_prefill": True, "enable_prefix_caching": True,
                   "gpu_memory_utilization": 0.3, "num_gpu_blocks": 31852, "max_model_len": 4096,
                   "dtype": "bfloat16", "tensor_parallel_size": 1, "pipeline_parallel_size": 1},
        "device": {"name": "cpu (test)", "memory_bytes": 16 * 2**30, "kind": "cpu"},
        "kv_cache_bytes": 4 * 2**30, "vllm_version": "0.32.0",
    }


def test_pack_written_and_loadable(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _steps(raw)
    (raw / WORKER_FILE).write_text(json.dumps(_worker_info()))
    write_pack(raw, tmp_path / "pack", "tiny-llama", {"model_type": "llama"}, "unit test")
    pack = load_pack(tmp_path / "pack")
    assert pack.meta.provenance.kind == "measured"
    assert pack.meta.engine.block_size == 128 and pack.meta.engine.async_scheduling is False
    assert pack.meta.engine.num_gpu_blocks == 31852
    assert pack.meta.device.kind == "cpu"
    assert len(pack.steps) == 3 and pack.requests is not None and len(pack.requests) == 2


def test_pack_needs_steps(tmp_path: Path) -> None:
    with pytest.raises(EmuError, match="no engine steps"):
        write_pack(tmp_path, tmp_path / "pack", "m", {}, "x")


def test_plan_covers_the_batch_space() -> None:
    plan = capture_plan(2048, 128, 4096)
    rnd = [p.workload for p in plan if p.workload.dataset == "random"]
    assert max(w.random_input_len for w in rnd) >= 2000  # prefill up to the token budget
    assert max(w.max_concurrency or 0 for w in rnd) == 128  # decode batches up to max_num_seqs
    assert all(w.random_input_len + w.random_output_len <= 4096 for w in rnd)
    rates = [p.workload.request_rate for p in plan if p.workload.dataset == "sharegpt"]
    assert len(rates) >= 3
    quick = capture_plan(2048, 128, 4096, quick=True)
    assert len(quick) < len(plan)
    for items in (plan, quick):  # short prompts alone in their step (light load) are covered
        pure = {p.workload.random_input_len for p in items if p.workload.max_concurrency == 1}
        assert {8, 16, 32} <= pure
        # requests that find the device idle (the warm-up model's samples): a slow Poisson rate, no concurrency cap
        idle = [p.workload for p in items if p.label.startswith("idle gaps")]
        assert len(idle) >= 2 and all(w.max_concurrency is None and 0 < w.request_rate <= 2 for w in idle)


def test_contended_steps_are_dropped() -> None:
    import pandas as pd

    from llm_emu.capture.cli import drop_contended

    steps = pd.DataFrame({"latency_us": [1000.0, 1000.0, 1000.0], "cpu_us": [990.0, 500.0, None]})
    kept, dropped = drop_contended(steps, 0.8)
    assert dropped == 1 and list(kept["cpu_us"].fillna(-1)) == [990.0, -1]
    assert drop_contended(steps, 0.0)[1] == 0
