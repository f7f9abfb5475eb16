"""From vLLM's ``SchedulerOutput`` to step features and the requests that get a token this step.

The worker never sees vLLM's ``Request`` objects, only what the scheduler sends each step, so it keeps a
small mirror per request (prompt length, sampling limits). The rules mirror vLLM's scheduler: a request gets
a sampled token when its computed tokens reach its prompt plus its outputs (placeholders of async
scheduling included); otherwise it is still inside a prefill chunk and gets ``[]``.

This runs on the EngineCore thread every step, so per-request work is done on numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
class StepBatch:
    """The scheduled requests of one step, in vLLM's order, as parallel arrays."""

    req_ids: list[str]
    states: list[RequestState]
    num_scheduled: np.ndarray
    num_computed: np.ndarray
    num_output_tokens: np.ndarray
    prompt_len: np.ndarray

    def __len__(self) -> int:
        return len(self.req_ids)

    @property
    def token_due(self) -> np.ndarray:
        """Per request: this step completes its known tokens, so a new token is sampled."""
        return self.num_computed + self.num_scheduled >= self.prompt_len + self.num_output_tokens

    @property
    def is_decode(self) -> np.ndarray:
        """Per request: one token that is the request's latest (vs a prompt or recompute chunk)."""
        return (self.num_scheduled == 1) & self.token_due


@dataclass
class BatchTracker:
    """Mirror of the scheduler's running requests, updated from each ``SchedulerOutput``."""

    requests: dict[str, RequestState] = field(default_factory=dict)

    def update(self, scheduler_output: Any, new_state: Callable[[Any], RequestState]) -> StepBatch:
        """Apply one ``SchedulerOutput``; return the scheduled requests in vLLM's order.

        Args:
            scheduler_output: vLLM's ``SchedulerOutput``.
            new_state: ``NewRequestData -> RequestState`` for requests seen the first time.
        """
        reqs = self.requests
        for req_id in scheduler_output.finished_req_ids:
            reqs.pop(req_id, None)
        num_sched: dict[str, int] = scheduler_output.num_scheduled_tokens
        ids: list[str] = []
        computed: list[int] = []
        outputs: list[int] = []
        for new in scheduler_output.scheduled_new_reqs:
            reqs[new.req_id] = new_state(new)
            if num_sched.get(new.req_id):
                ids.append(new.req_id)
                computed.append(new.num_computed_tokens)
                outputs.append(0)
        cached = scheduler_output.scheduled_cached_reqs
        if cached.req_ids:
            keep = [i for i, r in enumerate(cached.req_ids) if r in num_sched and r in reqs]
            if len(keep) == len(cached.req_ids):
                ids += cached.req_ids
                computed += cached.num_computed_tokens
                outputs += cached.num_output_tokens
            else:
                ids += [cached.req_ids[i] for i in keep]
                computed += [cached.num_computed_tokens[i] for i in keep]
                outputs += [cached.num_output_tokens[i] for i in keep]
        states = [reqs[r] for r in ids]
        return StepBatch(
            req_ids=ids,
            states=states,
            num_scheduled=np.fromiter((num_sched[r] for r in ids), dtype=np.int64, count=len(ids)),
            num_computed=np.asarray(computed, dtype=np.int64),
            num_output_tokens=np.asarray(outputs, dtype=np.int64),
            prompt_len=np.fromiter((s.prompt_len for s in states), dtype=np.int64, count=len(ids)),
        )


def step_features(batch: StepBatch) -> StepFeatures:
    """Batch features of one step (see StepFeatures for the definitions)."""
    decode = batch.is_decode
    prefill = ~decode
    return StepFeatures(
        num_prefill_tokens=int(batch.num_scheduled[prefill].sum()),
        num_prefill_reqs=int(prefill.sum()),
        num_decode_reqs=int(decode.sum()),
        decode_context_tokens=int(batch.num_computed[decode].sum() + decode.sum()),
        prefill_context_tokens=int(batch.num_computed[prefill].sum()),
    )
