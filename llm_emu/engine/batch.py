"""From vLLM's ``SchedulerOutput`` to step features and the requests that get a token this step.

The worker never sees vLLM's ``Request`` objects, only what the scheduler sends each step, so it keeps a
small mirror per request (prompt length, sampling limits). The rules mirror vLLM's scheduler: a request gets
a sampled token when its computed tokens reach its prompt plus its outputs (placeholders of async
scheduling included); otherwise it is still inside a prefill chunk and gets ``[]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_emu.profile.features import StepFeatures


@dataclass
class RequestState:
    """What the worker remembers about a running request."""

    prompt_len: int
    max_tokens: int | None = None
    logprobs: int | None = None
    eos_token_id: int | None = None
    target_output_len: int | None = None
    """Output length at which the output-length model ends the request with EOS (None: never)."""


@dataclass(frozen=True)
class ScheduledReq:
    """One request's part of a step."""

    req_id: str
    num_scheduled: int
    num_computed: int
    num_output_tokens: int
    state: RequestState

    @property
    def token_due(self) -> bool:
        """True when this step completes the request's known tokens, so a new token is sampled."""
        return self.num_computed + self.num_scheduled >= self.state.prompt_len + self.num_output_tokens

    @property
    def is_decode(self) -> bool:
        """One token that is the request's latest: a decode step (vs a prompt or recompute chunk)."""
        return self.num_scheduled == 1 and self.token_due


@dataclass
class BatchTracker:
    """Mirror of the scheduler's running requests, updated from each ``SchedulerOutput``."""

    requests: dict[str, RequestState] = field(default_factory=dict)

    def update(self, scheduler_output: Any, new_state: Any) -> list[ScheduledReq]:
        """Apply one ``SchedulerOutput``; return the scheduled requests in vLLM's order.

        Args:
            scheduler_output: vLLM's ``SchedulerOutput``.
            new_state: callable ``NewRequestData -> RequestState`` for requests seen the first time.
        """
        for req_id in scheduler_output.finished_req_ids:
            self.requests.pop(req_id, None)
        num_sched: dict[str, int] = scheduler_output.num_scheduled_tokens
        out: list[ScheduledReq] = []
        for new in scheduler_output.scheduled_new_reqs:
            state = new_state(new)
            self.requests[new.req_id] = state
            n = num_sched.get(new.req_id, 0)
            if n:
                out.append(ScheduledReq(new.req_id, n, new.num_computed_tokens, 0, state))
        cached = scheduler_output.scheduled_cached_reqs
        for i, req_id in enumerate(cached.req_ids):
            n = num_sched.get(req_id, 0)
            state = self.requests.get(req_id)
            if not n or state is None:
                continue
            out.append(
                ScheduledReq(req_id, n, cached.num_computed_tokens[i], cached.num_output_tokens[i], state)
            )
        return out


def step_features(scheduled: list[ScheduledReq]) -> StepFeatures:
    """Batch features of one step (see StepFeatures for the definitions)."""
    prefill_tokens = prefill_reqs = decode_reqs = decode_ctx = prefill_ctx = 0
    for r in scheduled:
        if r.is_decode:
            decode_reqs += 1
            decode_ctx += r.num_computed + 1
        else:
            prefill_reqs += 1
            prefill_tokens += r.num_scheduled
            prefill_ctx += r.num_computed
    return StepFeatures(
        num_prefill_tokens=prefill_tokens,
        num_prefill_reqs=prefill_reqs,
        num_decode_reqs=decode_reqs,
        decode_context_tokens=decode_ctx,
        prefill_context_tokens=prefill_ctx,
    )
