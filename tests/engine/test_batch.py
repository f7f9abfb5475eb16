"""SchedulerOutput -> step features and due tokens, using vLLM's own dataclasses."""

from __future__ import annotations

from vllm.v1.core.sched.output import CachedRequestData, NewRequestData, SchedulerOutput

from llm_emu.engine.batch import BatchTracker, RequestState, step_features


def _new(req_id: str, prompt_len: int, computed: int = 0) -> NewRequestData:
    return NewRequestData(req_id=req_id, prompt_token_ids=list(range(prompt_len)), mm_features=[],
                          sampling_params=None, pooling_params=None, block_ids=([],), num_computed_tokens=computed,
                          lora_request=None)


def _cached(items: list[tuple[str, int, int]]) -> CachedRequestData:
    return CachedRequestData(req_ids=[i[0] for i in items], resumed_req_ids=set(), new_token_ids=[],
                             all_token_ids={}, new_block_ids=[None] * len(items),
                             num_computed_tokens=[i[1] for i in items], num_output_tokens=[i[2] for i in items])


def _output(new: list[NewRequestData], cached: CachedRequestData, sched: dict[str, int],
            finished: set[str] | None = None) -> SchedulerOutput:
    return SchedulerOutput(scheduled_new_reqs=new, scheduled_cached_reqs=cached, num_scheduled_tokens=sched,
                           total_num_scheduled_tokens=sum(sched.values()), scheduled_spec_decode_tokens={},
                           scheduled_encoder_inputs={}, finished_req_ids=finished or set(),
                           free_encoder_mm_hashes=[])


def _state(new: NewRequestData) -> RequestState:
    return RequestState(prompt_len=len(new.prompt_token_ids or []))


def test_chunked_prefill_then_decode() -> None:
    tracker = BatchTracker()
    # step 1: first 512-token chunk of a 1000-token prompt: no token yet
    s1 = tracker.update(_output([_new("a", 1000)], _cached([]), {"a": 512}), _state)
    assert s1.token_due.tolist() == [False]
    f1 = step_features(s1)
    assert (f1.num_prefill_tokens, f1.num_prefill_reqs, f1.prefill_context_tokens) == (512, 1, 0)
    # step 2: the rest of the prompt: first token due; earlier chunk is context read by this chunk
    s2 = tracker.update(_output([], _cached([("a", 512, 0)]), {"a": 488}), _state)
    assert s2.token_due.tolist() == [True]
    assert step_features(s2).prefill_context_tokens == 512
    # step 3: decode with 1 output so far
    s3 = tracker.update(_output([], _cached([("a", 1000, 1)]), {"a": 1}), _state)
    f3 = step_features(s3)
    assert s3.is_decode[0] and (f3.num_decode_reqs, f3.decode_context_tokens) == (1, 1001)


def test_async_placeholder_counts_as_an_output() -> None:
    """With async scheduling, the in-flight token is a placeholder in num_output_tokens."""
    tracker = BatchTracker()
    tracker.update(_output([_new("a", 10)], _cached([]), {"a": 10}), _state)
    s = tracker.update(_output([], _cached([("a", 10, 1)]), {"a": 1}), _state)
    assert s.token_due[0] and s.is_decode[0]


def test_prefix_cache_hit_is_context_not_prefill() -> None:
    tracker = BatchTracker()
    s = tracker.update(_output([_new("b", 300, computed=256)], _cached([]), {"b": 44}), _state)
    f = step_features(s)
    assert (f.num_prefill_tokens, f.prefill_context_tokens) == (44, 256) and s.token_due[0]


def test_resumed_after_preemption_recomputes_prompt_and_outputs() -> None:
    tracker = BatchTracker()
    tracker.update(_output([_new("c", 100)], _cached([]), {"c": 100}), _state)
    # preempted with 20 outputs, then resumed: 120 tokens to recompute in one step -> token due after it
    s = tracker.update(_output([], _cached([("c", 0, 20)]), {"c": 120}), _state)
    assert s.token_due[0] and not s.is_decode[0]
    assert step_features(s).num_prefill_tokens == 120


def test_finished_requests_are_forgotten() -> None:
    tracker = BatchTracker()
    tracker.update(_output([_new("d", 5)], _cached([]), {"d": 5}), _state)
    tracker.update(_output([], _cached([]), {}, finished={"d"}), _state)
    assert "d" not in tracker.requests


def test_mixed_batch_keeps_vllm_order_and_skips_unscheduled() -> None:
    tracker = BatchTracker()
    tracker.update(_output([_new("x", 10), _new("y", 10)], _cached([]), {"x": 10, "y": 10}), _state)
    s = tracker.update(_output([_new("z", 40)], _cached([("x", 10, 1), ("y", 10, 1)]), {"z": 40, "y": 1}), _state)
    assert s.req_ids == ["z", "y"] and s.token_due.tolist() == [True, True] and s.is_decode.tolist() == [False, True]
    f = step_features(s)
    assert (f.num_prefill_tokens, f.num_prefill_reqs, f.num_decode_reqs, f.decode_context_tokens) == (40, 1, 1, 11)
