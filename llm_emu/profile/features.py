"""Step features: the batch description of one engine step, in vLLM's vocabulary.

A step's features are derived 1:1 from vLLM's ``SchedulerOutput`` (see ``llm_emu.engine.batch``) and are what
a latency oracle is asked about and what a capture records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class StepFeatures:
    """Batch composition of one engine step."""

    num_prefill_tokens: int = 0
    """Tokens scheduled for requests still in their prompt (prefill chunks, incl. resumed-after-preemption)."""
    num_prefill_reqs: int = 0
    """Requests scheduled with prompt tokens this step."""
    num_decode_reqs: int = 0
    """Requests scheduled for one generated token (decode)."""
    decode_context_tokens: int = 0
    """KV tokens the decode requests attend to (sum of their context lengths incl. the new token)."""
    prefill_context_tokens: int = 0
    """KV tokens already in cache that the prefill chunks attend to (prefix-cache hits, earlier chunks)."""

    @property
    def num_scheduled_tokens(self) -> int:
        """Total tokens in the step (vLLM's ``total_num_scheduled_tokens``)."""
        return self.num_prefill_tokens + self.num_decode_reqs

    @property
    def num_reqs(self) -> int:
        """Requests in the step."""
        return self.num_prefill_reqs + self.num_decode_reqs

    @property
    def context_tokens(self) -> int:
        """All KV tokens read by the step's attention."""
        return self.decode_context_tokens + self.prefill_context_tokens + self.num_prefill_tokens

    def as_tuple(self) -> tuple[int, ...]:
        """Field values in declaration order (the parquet column order)."""
        # Spelled out: dataclasses.astuple deep-copies and is called on every engine step.
        return (self.num_prefill_tokens, self.num_prefill_reqs, self.num_decode_reqs, self.decode_context_tokens,
                self.prefill_context_tokens)


#: Parquet columns of a pack's steps table: the features, then the device latency in microseconds.
STEP_COLUMNS: tuple[str, ...] = (*(f.name for f in fields(StepFeatures)), "latency_us")
