"""The emulated worker: vLLM's worker interface with the device replaced by an oracle on a timeline.

vLLM (scheduler, KV-cache manager, output processing) sees an ordinary worker: KV-cache specs derived from the
model config, a KV budget of the *target* device, and per step a ``ModelRunnerOutput`` with one token for every
request whose computed tokens reached its known tokens. No model, no KV tensors, no device.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from vllm.v1.outputs import EMPTY_MODEL_RUNNER_OUTPUT, AsyncModelRunnerOutput, ModelRunnerOutput
from vllm.v1.worker.worker_base import CompilationTimes, WorkerBase

from llm_emu.engine import compat
from llm_emu.engine.batch import BatchTracker, RequestState, StepBatch, step_features
from llm_emu.engine.clock import Booking, Clock, DeviceTimeline, VirtualClock, WallClock
from llm_emu.engine.kvspec import KVPlan, kv_cache_spec, kv_plan, log_plan
from llm_emu.engine.parallel import ParallelLayout, for_layout
from llm_emu.engine.settings import EmuSettings
from llm_emu.engine.tokens import OutputLengthModel, logprob_rows, token_pool, tokenizer_limits
from llm_emu.oracle import create_oracle
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.warmup import Warmup, WarmupState

# vLLM attaches its log handlers to the "vllm" logger tree only; a logger outside it would print nothing.
logger = logging.getLogger("vllm.llm_emu.worker")


class _TimedOutput(AsyncModelRunnerOutput):
    """The step's output, released when the emulated device finishes it.

    The wait is here, in ``get_output``, not in ``execute_model``: with async scheduling vLLM launches a step and
    schedules the next one while waiting for this output, so the emulated device overlaps host work as a GPU does.
    """

    def __init__(self, output: ModelRunnerOutput, booking: Booking, worker: EmuWorker,
                 record: dict[str, Any] | None):
        self._output = output
        self._booking = booking
        self._worker = worker
        self._record = record

    def get_output(self) -> ModelRunnerOutput:
        clock = self._worker.clock
        clock.sleep_until(self._booking.end)
        released = clock.now()
        self._worker.timeline.released(self._booking, released)
        if self._record is not None:
            self._record["released"] = released
            self._worker.trace.write(self._record)
        return self._output


class StepTrace:
    """Optional JSON-lines trace of every step, flushed incrementally (SIGTERM may skip shutdown)."""

    def __init__(self, path: str | None) -> None:
        self._fh = open(path, "a", buffering=1) if path else None

    @property
    def enabled(self) -> bool:
        """Whether records are written."""
        return self._fh is not None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class EmuWorker(WorkerBase):
    """A ``WorkerBase`` whose device is a latency oracle booked on a ``DeviceTimeline``."""

    def __init__(self, vllm_config: Any, local_rank: int, rank: int, distributed_init_method: str,
                 is_driver_worker: bool = False, **_: Any) -> None:
        super().__init__(vllm_config, local_rank, rank, distributed_init_method, is_driver_worker)
        self.settings = EmuSettings.from_vllm_config(vllm_config)
        self.clock: Clock = VirtualClock() if self.settings.clock == "virtual" else WallClock()
        self.host_cost: Callable[[StepFeatures], float] | None = None
        """Virtual clock only: engine CPU time charged before each step is launched (see llm_emu.virtual.host)."""
        # Pipeline parallelism: the device is a pipeline of PP stages, filled by vLLM's batch queue.
        self.timeline = DeviceTimeline(self.clock, stages=vllm_config.parallel_config.pipeline_parallel_size)
        self.tracker = BatchTracker()
        self.trace = StepTrace(self.settings.trace)
        self._pending: tuple[Any, float] | None = None
        self._num_blocks = 0
        self._plan: KVPlan | None = None
        #: This engine core's data-parallel replica (vLLM runs one engine core, so one worker, per replica).
        self.dp_rank = compat.data_parallel_rank(vllm_config)
        self._step = 0

    # ---- lifecycle -------------------------------------------------------------------------------------
    def init_device(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self.layout = ParallelLayout.from_vllm_config(self.vllm_config)
        self.pack = for_layout(self.settings.load_pack(self.model_config), self.layout)
        self.oracle = create_oracle(self.pack, self.settings.oracle, seed=self.settings.seed)
        self.warmup = WarmupState(Warmup.from_dict(self.pack.meta.warmup))
        vocab, special = tokenizer_limits(self.model_config)
        self._pool = token_pool(vocab, special, seed=self.settings.seed)
        self._rng = np.random.default_rng(self.settings.seed + 1)
        self._lengths = OutputLengthModel(self.pack.requests, seed=self.settings.seed + 2)
        logger.info("llm-emu: emulating %s at %s with the %s oracle (%s); vLLM's scheduler and KV manager run "
                    "unmodified", self.pack.meta.device.name, self.layout.describe(), self.oracle.name,
                    self.oracle.provenance)

    def load_model(self, *, load_dummy_weights: bool = False) -> None:
        """Nothing to load: the forward pass is emulated."""

    def compile_or_warm_up_model(self) -> CompilationTimes:
        return CompilationTimes(language_model=0.0, encoder=0.0)

    def get_supported_tasks(self) -> tuple[str, ...]:
        return ("generate",)

    def get_supported_kv_cache_layouts(self) -> list[str]:
        return compat.kv_cache_layouts()

    def update_max_model_len(self, max_model_len: int) -> None:
        self.model_config.max_model_len = max_model_len

    def shutdown(self) -> None:
        self.trace.close()

    # ---- virtual time (called in-process through vLLM's collective_rpc) -----------------------------------
    def emu_virtual_clock(self) -> Clock:
        """The worker's clock; the in-process virtual-time driver reads and advances it."""
        return self.clock

    def emu_set_host_cost(self, cost: Callable[[StepFeatures], float] | None) -> None:
        """Install the per-step host-time model of the virtual clock (None: host time is free)."""
        self.host_cost = cost

    # ---- KV cache --------------------------------------------------------------------------------------
    def _kv_plan(self) -> KVPlan:
        """The limiting GPU of the TP x PP layout (computed once; vLLM asks for its spec, then its bytes)."""
        if self._plan is None:
            self._plan = kv_plan(self.vllm_config, self.pack)
            log_plan(self._plan, self.vllm_config, self.pack)
        return self._plan

    def get_kv_cache_spec(self) -> dict[str, Any]:
        return kv_cache_spec(self.vllm_config, self._kv_plan().layers)

    def determine_available_memory(self) -> int:
        return self._kv_plan().available_bytes

    def initialize_from_config(self, kv_cache_config: Any) -> None:
        self._num_blocks = int(getattr(kv_cache_config, "num_blocks", 0))

    # ---- stepping --------------------------------------------------------------------------------------
    def _new_state(self, new: Any) -> RequestState:
        sp = new.sampling_params
        prompt_len = len(new.prompt_token_ids) if new.prompt_token_ids is not None else int(
            new.prompt_embeds.shape[0])
        eos = None if sp is None or sp.ignore_eos else getattr(sp, "_eos_token_id", None)
        return RequestState(
            prompt_len=prompt_len,
            max_tokens=None if sp is None else sp.max_tokens,
            logprobs=None if sp is None else sp.logprobs,
            eos_token_id=eos,
            target_output_len=self._lengths.draw() if eos is not None else None,
        )

    def execute_model(self, scheduler_output: Any, *args: Any, **kwargs: Any) -> ModelRunnerOutput | None:
        launched = self.clock.now()
        if scheduler_output.total_num_scheduled_tokens == 0:
            self.tracker.update(scheduler_output, self._new_state)
            return EMPTY_MODEL_RUNNER_OUTPUT
        self._pending = (scheduler_output, launched)
        return None

    def sample_tokens(self, grammar_output: Any = None, *args: Any, **kwargs: Any) -> Any:
        if self._pending is None:
            return EMPTY_MODEL_RUNNER_OUTPUT
        scheduler_output, launched = self._pending
        self._pending = None
        tracing = self.trace.enabled
        t0 = time.thread_time() if tracing else 0.0  # CPU time of this thread: what the emulator adds
        batch = self.tracker.update(scheduler_output, self._new_state)
        features = step_features(batch)
        latency = self.oracle.sample(features)
        if self.host_cost is not None:  # virtual clock: the engine thread was busy before it could launch
            self.clock.advance(self.host_cost(features))  # type: ignore[attr-defined]
            launched = self.clock.now()
        # The first steps after an idle device take longer on the profiled device (a measured pack's warm-up model).
        latency = max(0.0, latency + self.warmup.extra_s(self.timeline.idle_before(launched)))
        booking = self.timeline.book(latency, launched)
        output = self._make_output(batch)
        self._step += 1
        record = None
        if tracing:  # the new requests let a trace be joined with client timings
            record = _record(self._step, features, latency, booking, time.thread_time() - t0)
            record["new_req_ids"] = [new.req_id for new in scheduler_output.scheduled_new_reqs]
            record["dp_rank"] = self.dp_rank
        return _TimedOutput(output, booking, self, record)

    def _make_output(self, batch: StepBatch) -> ModelRunnerOutput:
        return make_output(batch, self._pool, self._rng)


def make_output(batch: StepBatch, pool: np.ndarray, rng: np.random.Generator) -> ModelRunnerOutput:
    """The step's ``ModelRunnerOutput``: one synthetic token per request whose token is due, ``[]`` otherwise."""
    tokens = pool[rng.integers(len(pool), size=len(batch))]
    due = batch.token_due
    ending = [i for i, st in enumerate(batch.states) if st.target_output_len is not None and due[i]
              and batch.num_output_tokens[i] + 1 >= st.target_output_len]
    for i in ending:  # the output-length model ends this request: vLLM's own stop check sees EOS
        tokens[i] = batch.states[i].eos_token_id
    sampled = [[t] if d else [] for t, d in zip(tokens.tolist(), due.tolist(), strict=True)]
    logprobs = None
    if any(st.logprobs is not None for st in batch.states):
        logprobs = logprob_rows(tokens.tolist(), [st.logprobs for st in batch.states], pool, rng)
    return ModelRunnerOutput(
        req_ids=batch.req_ids,
        req_id_to_index={rid: i for i, rid in enumerate(batch.req_ids)},
        sampled_token_ids=sampled,
        logprobs=logprobs,
    )


def _record(step: int, f: StepFeatures, latency: float, b: Booking, overhead: float) -> dict[str, Any]:
    return {
        "step": step,
        "num_prefill_tokens": f.num_prefill_tokens,
        "num_prefill_reqs": f.num_prefill_reqs,
        "num_decode_reqs": f.num_decode_reqs,
        "decode_context_tokens": f.decode_context_tokens,
        "prefill_context_tokens": f.prefill_context_tokens,
        "latency": latency,
        "launched": b.launched,
        "start": b.start,
        "end": b.end,
        "worker_cpu": overhead,
    }
