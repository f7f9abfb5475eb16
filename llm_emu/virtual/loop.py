"""The virtual-time event loop: vLLM's engine stepped on a virtual clock, requests injected at their times.

What a wall-clock run does with real processes, this loop does on one thread:

* the client sends request i at ``t0 + offset_i`` (or, with a concurrency limit, when a slot frees, as
  ``asyncio.Semaphore`` in vLLM's client would let it), and it reaches the scheduler ``request_in`` later;
* vLLM's ``LLMEngine.step()`` schedules, "executes" (the emulated worker books the step on the device timeline
  of the virtual clock; waiting for its output moves the clock to the step's end) and processes outputs with
  vLLM's own output processor;
* a request's intake queues at the API server ``api_request_turns`` times (vLLM's serving path awaits between
  its stages, and each await lets the tasks already ready run first), ``api_request_s`` split between the turns;
* every ``RequestOutput`` is one streamed chunk; the API server (one event loop, modelled as a first-come
  first-served queue with ``HostModel.api_request_s`` per request, ``api_step_s`` + ``api_token_s`` per
  request output for each engine step's output batch, and ``api_output_s`` per chunk sent) handles
  requests and chunks in time order, and the client receives a chunk ``output_s`` after the API server is done
  with it (tokens of a request whose previous chunk still waits for the API server join that chunk, as vLLM's
  per-request output collector merges them); the client's records (TTFT, inter-chunk gaps, latency, output
  tokens) are kept exactly as vLLM's client keeps them, so vLLM's ``calculate_metrics`` turns them into the
  usual metrics.

When nothing is in the engine, the clock jumps to the next event. Nothing depends on wall time.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_emu.engine import compat
from llm_emu.engine.clock import VirtualClock
from llm_emu.errors import EmuError
from llm_emu.virtual.host import HostModel
from llm_emu.virtual.workload import ClientRun

#: Engine steps in a row without any progress (no output, no clock movement) before the loop gives up.
MAX_IDLE_STEPS = 1000


@dataclass
class _Stream:
    """One request as the client sees it."""

    output: Any
    """vLLM's RequestFuncOutput being filled."""
    sent: float = 0.0
    last: float = 0.0
    received: bool = False
    api_start: float = float("-inf")
    """When the API server starts on this request's latest chunk."""


@dataclass
class _State:
    clock: VirtualClock
    t0: float
    streams: dict[str, _Stream] = field(default_factory=dict)
    to_engine: list[tuple[float, int, str, Any, Any]] = field(default_factory=list)
    """Heap of (time the scheduler sees it, index, request id, engine input, sampling params)."""
    intake: list[tuple[float, int, int, str, Any, Any]] = field(default_factory=list)
    """Heap of requests in the API server's intake: (time its next turn reaches the API server's queue, index,
    turns left, request id, engine input, sampling params)."""
    done: int = 0
    end: float = 0.0
    api_free: float = 0.0
    """When the API server's event loop is next free (requests and chunks are served one at a time)."""

    def take_api(self, at: float, busy_s: float) -> float:
        """The API server takes a request or chunk that reaches it at ``at``: when it starts on it."""
        start = max(at, self.api_free)
        self.api_free = start + busy_s
        return start


class VirtualLoop:
    """Runs one benchmark run (a ``ClientRun``) through an in-process ``LLMEngine`` on a ``VirtualClock``."""

    def __init__(self, engine: Any, clock: VirtualClock, host: HostModel, run_id: str,
                 render: Callable[[dict[str, Any]], tuple[Any, Any]] | None = None) -> None:
        """
        Args:
            engine: vLLM's in-process ``LLMEngine`` (add_request / step / has_unfinished_requests).
            clock: the emulated worker's clock.
            host: host time charged outside the engine steps.
            run_id: prefix of request ids (unique per engine).
            render: completion body -> (engine input, SamplingParams); default: what vLLM's server does.
        """
        self.engine = engine
        self.clock = clock
        self.host = host
        self.run_id = run_id
        if render is None:
            defaults = compat.server_sampling_defaults(engine)
            render = functools.partial(compat.render_completion, engine, defaults=defaults)
        self._render = render

    # ---- public ------------------------------------------------------------------------------------------
    def warm_up(self, run: ClientRun) -> None:
        """The client's initial single-prompt test run (it fills the prefix cache like in wall mode)."""
        state = _State(clock=self.clock, t0=self.clock.now())
        self._send(state, run, 0, "warmup", self.clock.now())
        self._drive(state, deque(), total=1, limit=None, run=None)
        self.clock.sleep_until(state.end)  # the client reads the whole stream before it starts the run

    def run(self, run: ClientRun) -> tuple[list[Any], float]:
        """Send every request at its time; return vLLM's per-request outputs and the run's duration (s)."""
        state = _State(clock=self.clock, t0=self.clock.now())
        arrivals = deque((state.t0 + off, i) for i, off in enumerate(run.offsets_s))
        limit = run.args.max_concurrency
        self._drive(state, arrivals, total=len(run.requests), limit=limit, run=run)
        self.clock.sleep_until(state.end)
        outputs = [state.streams[self._rid(i)].output for i in range(len(run.requests))]
        return outputs, state.end - state.t0

    # ---- internals ---------------------------------------------------------------------------------------
    def _rid(self, i: int | str) -> str:
        return f"{self.run_id}-{i}"

    def _send(self, state: _State, run: ClientRun, i: int, key: int | str, at: float) -> None:
        request = run.requests[i]
        engine_input, params = self._render(compat.completion_payload(run.args, request))
        out = compat.request_func_output()
        out.prompt_len = request.prompt_len
        out.start_time = at - state.t0
        rid = self._rid(key)
        state.streams[rid] = _Stream(output=out, sent=at, last=at)
        heapq.heappush(state.intake, (at, len(state.streams), self.host.api_request_turns, rid, engine_input, params))

    def _intake(self, state: _State, now: float) -> None:
        """Queue at the API server every intake turn that reaches it by ``now``, in time order; a request whose
        last turn is done goes on to the scheduler (``request_in`` later)."""
        share = self.host.api_request_s / self.host.api_request_turns
        while state.intake and state.intake[0][0] <= now:
            at, idx, left, rid, engine_input, params = heapq.heappop(state.intake)
            done = state.take_api(at, share) + share
            if left > 1:
                heapq.heappush(state.intake, (done, idx, left - 1, rid, engine_input, params))
            else:
                prompt_len = len(engine_input.get("prompt_token_ids") or ())
                # request_in (measured at an idle server) holds the intake's own API time: only the waits add
                seen = done - self.host.api_request_s + self.host.request_in(prompt_len)
                heapq.heappush(state.to_engine, (seen, idx, rid, engine_input, params))

    def _drive(self, state: _State, arrivals: deque[tuple[float, int]], total: int, limit: int | None,
               run: ClientRun | None) -> None:
        # The client's semaphore: when each of its `limit` slots is free next (a request takes the earliest).
        slots = [state.t0] * (limit or 0)
        idle = 0
        while state.done < total:
            now = self.clock.now()
            self._dispatch(state, arrivals, slots, limit, run, now)
            self._intake(state, now)
            while state.to_engine and state.to_engine[0][0] <= now:
                _, _, rid, engine_input, params = heapq.heappop(state.to_engine)
                self.engine.add_request(rid, engine_input, params)
            if not self.engine.has_unfinished_requests():
                times = [t for t in (state.to_engine[0][0] if state.to_engine else None,
                                     state.intake[0][0] if state.intake else None,
                                     arrivals[0][0] if arrivals and (slots or not limit) else None) if t is not None]
                if not times:
                    raise EmuError(f"virtual run stalled with {total - state.done} request(s) unfinished")
                self.clock.sleep_until(min(times))
                continue
            before = (self.clock.now(), state.done)
            outputs = self.engine.step()
            # requests sent while the step ran reach the API server before the step's output does
            self._dispatch(state, arrivals, slots, limit, run, self.clock.now())
            for at in self._collect(state, outputs):
                if limit:
                    heapq.heappush(slots, at)
            idle = idle + 1 if (self.clock.now(), state.done) == before else 0
            if idle > MAX_IDLE_STEPS:
                raise EmuError("virtual run made no progress for 1000 engine steps; "
                               "a request may not fit the KV cache (lower --max-model-len or the prompt length)")

    def _dispatch(self, state: _State, arrivals: deque[tuple[float, int]], slots: list[float], limit: int | None,
                  run: ClientRun | None, now: float) -> None:
        """Send every request whose time has come (and, with a concurrency limit, that has a free slot)."""
        while arrivals and arrivals[0][0] <= now and (slots or not limit):
            dispatched, i = arrivals.popleft()
            assert run is not None
            sent = max(dispatched, heapq.heappop(slots)) if limit else dispatched
            self._send(state, run, i, i, sent)
            state.streams[self._rid(i)].output.client_queue_time = sent - dispatched

    def _collect(self, state: _State, outputs: list[Any]) -> list[float]:
        """Record one streamed chunk per RequestOutput; return the client-side end times of finished requests."""
        now = self.clock.now()
        finished: list[float] = []
        self._intake(state, now)  # intake turns that reached the API server before this step's outputs
        batch = self.host.api_batch(len(outputs))
        if batch:  # the API server takes the step's output batch (every request's output) before its chunks
            state.take_api(now, batch)
        for ro in outputs:
            stream = state.streams[ro.request_id]
            out = stream.output
            completion = ro.outputs[0]
            out.output_tokens += len(completion.token_ids)
            out.generated_text += completion.text or ""
            if stream.received and stream.api_start > now:
                # The API server has not reached this request's previous chunk yet: vLLM's per-request output
                # collector merges the new tokens into it (one chunk, no extra work), so a busy API server
                # streams fewer, larger chunks instead of falling further behind.
                at = stream.last
            else:
                stream.api_start = state.take_api(now, self.host.api_output_s)
                at = stream.api_start + self.host.api_output_s + self.host.output_s
                if not stream.received:
                    stream.received = True
                    out.ttft = at - stream.sent
                else:
                    out.itl.append(at - stream.last)
                stream.last = at
            if ro.finished:
                out.latency = at - stream.sent
                out.success = True
                state.done += 1
                state.end = max(state.end, at)
                finished.append(at)
        return finished
