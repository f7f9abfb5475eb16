"""The virtual event loop's client semantics, checked against a scripted engine with known step times."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pytest

from llm_emu.engine.clock import VirtualClock
from llm_emu.virtual.host import HostModel
from llm_emu.virtual.loop import VirtualLoop
from llm_emu.virtual.workload import ClientRun

STEP_S = 0.010


@dataclass
class ScriptedEngine:
    """Every step takes STEP_S on the clock and gives each running request one token (prefill included)."""

    clock: VirtualClock
    running: dict[str, list[int]] = field(default_factory=dict)  # id -> [tokens left, tokens made]
    max_running_seen: int = 0

    def add_request(self, rid: str, engine_input: Any, params: Any) -> None:
        self.running[rid] = [params.max_tokens, 0]
        self.max_running_seen = max(self.max_running_seen, len(self.running))

    def has_unfinished_requests(self) -> bool:
        return bool(self.running)

    def step(self) -> list[Any]:
        self.clock.advance(STEP_S)
        outs = []
        for rid, state in list(self.running.items()):
            state[0] -= 1
            finished = state[0] == 0
            outs.append(SimpleNamespace(request_id=rid, finished=finished,
                                        outputs=[SimpleNamespace(token_ids=[7], text="x")]))
            if finished:
                del self.running[rid]
        return outs


def _render(payload: dict[str, Any]) -> tuple[Any, Any]:
    return {"prompt_token_ids": [1] * 10}, SimpleNamespace(max_tokens=payload["max_tokens"])


def _run(n: int, offsets: list[float], out_len: int, limit: int | None, host: HostModel) -> tuple[list, float, Any]:
    clock = VirtualClock()
    engine = ScriptedEngine(clock)
    args = argparse.Namespace(served_model_name="m", model="m", logprobs=None, ignore_eos=True,
                              max_concurrency=limit, top_p=None, top_k=None, min_p=None, temperature=None,
                              frequency_penalty=None, presence_penalty=None, repetition_penalty=None,
                              extra_body=None)
    requests = [SimpleNamespace(prompt="p", prompt_len=10, expected_output_len=out_len) for _ in range(n)]
    run = ClientRun(args=args, requests=requests, offsets_s=offsets, goodput={})
    loop = VirtualLoop(engine, clock, host, "t", render=_render)
    outputs, duration = loop.run(run)
    return outputs, duration, engine


def test_isolated_request_times() -> None:
    host = HostModel(request_in_s=0.002, output_s=0.001)
    outputs, duration, _ = _run(1, [0.5], out_len=4, limit=None, host=host)
    (out,) = outputs
    # sent at 0.5, seen by the scheduler at 0.502, first step ends 0.512, received 0.513
    assert out.ttft == pytest.approx(0.002 + STEP_S + 0.001)
    assert out.itl == pytest.approx([STEP_S] * 3)
    assert out.latency == pytest.approx(0.002 + 4 * STEP_S + 0.001)
    assert out.output_tokens == 4 and out.success
    assert duration == pytest.approx(0.5 + out.latency)


def test_concurrency_limit_queues_on_the_client() -> None:
    outputs, _, engine = _run(5, [0.0] * 5, out_len=3, limit=2, host=HostModel())
    assert engine.max_running_seen == 2
    queue = [o.client_queue_time for o in outputs]
    assert queue[:2] == [0.0, 0.0]
    assert queue[2] == pytest.approx(3 * STEP_S)  # waits for the first two to finish
    assert queue[4] == pytest.approx(6 * STEP_S)
    assert all(o.ttft == pytest.approx(STEP_S) for o in outputs)  # TTFT excludes the client-side wait


def test_requests_arriving_during_a_step_join_the_next() -> None:
    outputs, _, _ = _run(2, [0.0, 0.004], out_len=3, limit=None, host=HostModel())
    assert outputs[0].ttft == pytest.approx(STEP_S)
    # arrives at 4 ms while step 1 runs; scheduled at 10 ms; first token at 20 ms
    assert outputs[1].ttft == pytest.approx(2 * STEP_S - 0.004)


def test_idle_gaps_are_skipped_not_waited() -> None:
    outputs, duration, _ = _run(2, [0.0, 1000.0], out_len=2, limit=None, host=HostModel())
    assert duration == pytest.approx(1000.0 + 2 * STEP_S)
    assert outputs[1].ttft == pytest.approx(STEP_S)



def test_api_server_serves_requests_and_chunks_one_at_a_time() -> None:
    """A burst queues at the API server (api_request_s each); a step's chunks leave it one after the other."""
    host = HostModel(api_request_s=0.003, api_output_s=0.0005, output_s=0.001)
    outputs, _, _ = _run(2, [0.0, 0.0], out_len=2, limit=None, host=host)
    first, second = outputs
    # request 0 is taken at 0 and scheduled at once; step 1 (0-10 ms) -> its chunk 10.5 ms, received 11.5 ms
    assert first.ttft == pytest.approx(STEP_S + 0.0005 + 0.001)
    # request 1 waits 3 ms for the API server, joins step 2 (10-20 ms) behind request 0's chunk
    assert second.ttft == pytest.approx(2 * STEP_S + 2 * 0.0005 + 0.001)
    assert first.itl == pytest.approx([STEP_S])
    # step 3 has request 1 alone: its chunk no longer waits behind another
    assert second.itl == pytest.approx([STEP_S - 0.0005])


def test_requests_sent_during_a_step_reach_the_api_server_before_its_chunks() -> None:
    host = HostModel(api_request_s=0.0, api_output_s=0.004)
    outputs, _, _ = _run(2, [0.0, 0.005], out_len=2, limit=None, host=host)
    # request 1 (sent at 5 ms, during step 1) is taken at once, not behind step 1's chunk at 10-14 ms
    assert outputs[1].ttft == pytest.approx(2 * STEP_S - 0.005 + 2 * 0.004)


def test_a_busy_api_server_merges_a_requests_tokens_into_its_waiting_chunk() -> None:
    """Chunks cost more API time than a step lasts: tokens merge into the waiting chunk (vLLM's output
    collector), so the queue stays bounded and every token is still counted."""
    host = HostModel(api_output_s=0.025)  # 2.5 steps of API work per chunk
    outputs, duration, _ = _run(1, [0.0], out_len=6, limit=None, host=host)
    (out,) = outputs
    assert out.output_tokens == 6
    assert out.ttft == pytest.approx(STEP_S + 0.025)
    # steps end at 10..60 ms; the API server takes chunks at 10, 35, 60, 85 ms: step 3's token joins step 2's
    # chunk (not taken yet at 30 ms), step 5's joins step 4's; step 6's (60 ms) finds its predecessor taken
    assert out.itl == pytest.approx([0.025, 0.025, 0.025])
    assert out.latency == pytest.approx(0.110)
    assert duration == pytest.approx(0.110)


def test_a_steps_outputs_cost_the_api_server_once_before_its_chunks() -> None:
    """api_step_s is charged once per step with outputs, ahead of that step's chunks, not once per chunk."""
    host = HostModel(api_step_s=0.002, api_output_s=0.0005, output_s=0.001)
    outputs, _, _ = _run(3, [0.0, 0.0, 0.0], out_len=2, limit=None, host=host)
    # all three share step 1 (0-10 ms): the batch takes 10-12 ms, then the chunks 12-12.5, 12.5-13, 13-13.5
    assert [o.ttft for o in outputs] == pytest.approx([STEP_S + 0.002 + k * 0.0005 + 0.001 for k in (1, 2, 3)])
    # step 2 (10-20 ms) again pays the batch once: chunks at 22.5, 23, 23.5 ms -> every gap is one step
    assert [gap for o in outputs for gap in o.itl] == pytest.approx([STEP_S] * 3)


def test_every_request_output_costs_the_api_server_even_when_merged() -> None:
    """api_token_s is charged with the step's batch for each request output, also for one merged into a chunk
    not yet sent (vLLM's output processor detokenises every output before its collector merges them)."""
    host = HostModel(api_token_s=0.004, api_output_s=0.011)
    outputs, _, _ = _run(1, [0.0], out_len=5, limit=None, host=host)
    (out,) = outputs
    # steps end at 10, 20, 30, 40, 50 ms. Batch + chunk: 10-14 + 14-25, 25-29 + 29-40, 40-44 + 44-55;
    # step 4 (40 ms): batch 55-59, its token joins the chunk taken at 44 > 40 ms (merged, sent at 55);
    # step 5 (50 ms): batch 59-63 (it waits for step 4's batch, merged or not), chunk 63-74
    assert out.output_tokens == 5
    assert out.ttft == pytest.approx(0.025)
    assert out.itl == pytest.approx([0.015, 0.015, 0.019])
    assert out.latency == pytest.approx(0.074)


def test_a_requests_intake_waits_behind_each_steps_outputs_once_per_turn() -> None:
    """With api_request_turns > 1 the intake re-queues at the API server after each turn, so a request sent
    while chunks stream waits behind the outputs of every step that ends meanwhile; alone it costs the same."""
    alone = HostModel(api_request_s=0.003, api_request_turns=3, request_in_s=0.004)
    (out,), _, _ = _run(1, [0.0], out_len=2, limit=None, host=alone)
    assert out.ttft == pytest.approx(0.004 + STEP_S)  # idle server: turns 0-1, 1-2, 2-3 ms, seen at 4 ms
    loaded = HostModel(api_request_s=0.006, api_request_turns=3, request_in_s=0.006, api_step_s=0.008)
    outputs, _, _ = _run(2, [0.0, 0.0205], out_len=5, limit=None, host=loaded)
    # request 0 is seen at 6 ms; its steps end at 16, 26, 36, 46, 56 ms and each step's batch holds the API
    # server 8 ms (16-24, 28-36, ...). Request 1, sent at 20.5 ms: turn 1 waits for the batch -> 24-26,
    # turn 2 26-28, then step 2's batch (26 ms) goes first: 28-36, turn 3 36-38; seen at 38 - 6 + 6 = 38 ms,
    # first scheduled in the step at 46-56 ms, its batch 56-64 ms
    assert outputs[1].ttft == pytest.approx(0.064 - 0.0205)
    # as one first-come first-served job it is done at 30 ms and makes the step at 36-46 ms
    outputs1, _, _ = _run(2, [0.0, 0.0205], out_len=5, limit=None, host=replace(loaded, api_request_turns=1))
    assert outputs1[1].ttft == pytest.approx(0.054 - 0.0205)
