"""Recording workers: the platform's own vLLM worker, subclassed, timing what the emulator replaces.

Started by the real server through vLLM's supported ``--worker-cls`` hook (a qualname string), configured by
``--additional-config '{"llm_emu_capture": {"out": DIR}}'``; nothing in vLLM is patched.

Per engine step with scheduled tokens the worker records the step's features (``llm_emu.engine.batch``, the
same code the emulated worker uses, so capture and replay describe steps identically) and its *device
latency*: the forward pass plus sampling, not vLLM's scheduler CPU work:

* sync engine (vLLM-CPU always; CUDA without async outputs): ``execute_model`` entry to ``sample_tokens``
  return;
* async outputs (CUDA with async scheduling): ``ready - max(launch, prev_ready)`` where ``launch`` is
  ``execute_model`` entry and ``ready`` is when the output's ``get_output()`` returned (the device queue
  serialises steps, so a step cannot start before the previous one finished).

Use ``CPURecordingWorker`` on vLLM-CPU and ``CudaRecordingWorker`` on CUDA (``worker_qualname()`` picks).
"""

from __future__ import annotations

import logging
import os
import platform as _platform
import time
from typing import Any

from vllm.v1.outputs import AsyncModelRunnerOutput
from vllm.v1.worker.cpu_worker import CPUWorker
from vllm.v1.worker.gpu_worker import Worker as GPUWorker

from llm_emu.capture.recorder import (
    REQUESTS_FILE,
    STEPS_FILE,
    WORKER_FILE,
    JsonLines,
    capture_dir,
    step_record,
)
from llm_emu.engine.batch import BatchTracker, RequestState, StepBatch, step_features
from llm_emu.fsutil import atomic_write_json

# vLLM attaches its log handlers to the "vllm" logger tree only; a logger outside it would print nothing.
logger = logging.getLogger("vllm.llm_emu.capture")


def new_request_state(new: Any) -> RequestState:
    """RequestState from vLLM's ``NewRequestData`` (prompt length and sampling limits)."""
    sp = new.sampling_params
    if new.prompt_token_ids is not None:
        prompt_len = len(new.prompt_token_ids)
    elif getattr(new, "prompt_embeds", None) is not None:
        prompt_len = int(new.prompt_embeds.shape[0])
    else:
        prompt_len = len(new.prefill_token_ids or [])
    return RequestState(prompt_len=prompt_len, max_tokens=None if sp is None else sp.max_tokens)


class StepRecorder:
    """Turns (SchedulerOutput, timing) pairs into steps.jsonl / requests.jsonl lines. No vLLM process needed."""

    def __init__(self, out: Any, max_model_len: int | None = None) -> None:
        self.out = out
        self.max_model_len = max_model_len
        self.tracker = BatchTracker()
        self.steps = JsonLines(None if out is None else out / STEPS_FILE)
        self.requests = JsonLines(None if out is None else out / REQUESTS_FILE)
        self._sampled: dict[str, int] = {}
        self.num_steps = 0
        self.prev_ready = 0.0

    def _finish(self, scheduler_output: Any) -> None:
        for req_id in scheduler_output.finished_req_ids:
            state = self.tracker.requests.get(req_id)
            if state is None:
                continue
            n = self._sampled.pop(req_id, 0)
            hit_len = (state.max_tokens is not None and n >= state.max_tokens) or (
                self.max_model_len is not None and state.prompt_len + n >= self.max_model_len)
            self.requests.write({"prompt_len": state.prompt_len, "output_len": n,
                                 "finish_reason": "length" if hit_len else "stop"})

    def update(self, scheduler_output: Any) -> StepBatch:
        """Apply one SchedulerOutput to the mirror; return the scheduled requests of the step."""
        self._finish(scheduler_output)
        scheduled = self.tracker.update(scheduler_output, new_request_state)
        for req_id, due in zip(scheduled.req_ids, scheduled.token_due.tolist(), strict=True):
            if due:
                self._sampled[req_id] = self._sampled.get(req_id, 0) + 1
        return scheduled

    def record(self, scheduler_output: Any, latency_s: float, mode: str, **extra: Any) -> None:
        """Record one step with tokens (call once per SchedulerOutput with total_num_scheduled_tokens > 0)."""
        scheduled = self.update(scheduler_output)
        features = step_features(scheduled)
        self.num_steps += 1
        self.steps.write(step_record(features, latency_s, t=round(time.time(), 6), mode=mode, **extra))

    def close(self) -> None:
        self.steps.close()
        self.requests.close()


class _ReadyTimed(AsyncModelRunnerOutput):
    """Async output proxy: records the step when the device result is ready (``get_output`` returns)."""

    def __init__(self, inner: AsyncModelRunnerOutput, worker: RecordingMixin, scheduler_output: Any,
                 launched: float) -> None:
        self._inner = inner
        self._worker = worker
        self._sched = scheduler_output
        self._launched = launched

    def get_output(self) -> Any:
        out = self._inner.get_output()
        ready = time.perf_counter()
        rec = self._worker._recorder
        if rec is not None:
            start = max(self._launched, rec.prev_ready)
            rec.prev_ready = ready
            rec.record(self._sched, ready - start, "async")
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"cpu ({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return f"cpu ({_platform.processor() or _platform.machine()})"


class RecordingMixin:
    """Shared recording logic; mixed in front of the platform's worker class."""

    vllm_config: Any
    _recorder: StepRecorder | None
    _pending: tuple[Any, float] | None
    _kv_bytes: int | None
    _cpu0: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        out = capture_dir(self.vllm_config)
        self._pending = None
        self._kv_bytes = None
        self._recorder = None
        if out is None:
            logger.warning("llm-emu capture worker without --additional-config '{\"llm_emu_capture\": ...}': "
                           "recording is off")
        else:
            out.mkdir(parents=True, exist_ok=True)
            self._recorder = StepRecorder(out, self.vllm_config.model_config.max_model_len)
            logger.info("llm-emu: recording engine steps to %s", out / STEPS_FILE)

    # ---- config / device description ----------------------------------------------------------------
    def determine_available_memory(self) -> int:
        kv = int(super().determine_available_memory())  # type: ignore[misc]
        self._kv_bytes = kv
        return kv

    def initialize_from_config(self, kv_cache_config: Any) -> None:
        super().initialize_from_config(kv_cache_config)  # type: ignore[misc]
        if self._recorder is not None and self.rank_is_recorder():
            info = self.describe(int(getattr(kv_cache_config, "num_blocks", 0)))
            atomic_write_json(self._recorder.out / WORKER_FILE, info, sort_keys=True)

    def rank_is_recorder(self) -> bool:
        return int(getattr(self, "rank", 0)) == 0

    def device_info(self) -> dict[str, Any]:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return {"name": torch.cuda.get_device_name(0), "memory_bytes": int(props.total_memory), "kind": "cuda"}
        mem = 0
        try:
            from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

            mem = int(get_memory_node_info(get_allowed_cpu_list()[0].numa_node).total_memory)
        except Exception:  # best effort: fall back to the machine's RAM
            mem = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        return {"name": _cpu_name(), "memory_bytes": mem, "kind": "cpu"}

    def describe(self, num_blocks: int) -> dict[str, Any]:
        """Resolved engine settings (pack EngineSettings fields) + device + versions, as vLLM really ran."""
        import vllm

        c = self.vllm_config
        sched, cache, par, model = c.scheduler_config, c.cache_config, c.parallel_config, c.model_config
        engine = {
            "block_size": int(cache.block_size),
            "async_scheduling": bool(sched.async_scheduling),
            "max_num_batched_tokens": int(sched.max_num_batched_tokens),
            "max_num_seqs": int(sched.max_num_seqs),
            "enable_chunked_prefill": bool(sched.enable_chunked_prefill),
            "enable_prefix_caching": bool(cache.enable_prefix_caching),
            "gpu_memory_utilization": float(cache.gpu_memory_utilization),
            "num_gpu_blocks": num_blocks or None,
            "max_model_len": int(model.max_model_len),
            "dtype": _dtype_name(model.dtype),
            "tensor_parallel_size": int(par.tensor_parallel_size),
            "pipeline_parallel_size": int(par.pipeline_parallel_size),
        }
        omp = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_PLACES", "VLLM_CPU_OMP_THREADS_BIND",
                                          "VLLM_CPU_NUM_OF_RESERVED_CPU") if k in os.environ}
        return {
            "engine": engine,
            "device": self.device_info(),
            "kv_cache_bytes": self._kv_bytes,
            "vllm_version": vllm.__version__,
            "worker_cls": f"{type(self).__module__}.{type(self).__qualname__}",
            "pid": os.getpid(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "omp_env": omp,
        }

    # ---- stepping ------------------------------------------------------------------------------------
    def execute_model(self, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        launched = time.perf_counter()
        self._cpu0 = time.thread_time()
        out = super().execute_model(scheduler_output, *args, **kwargs)  # type: ignore[misc]
        rec = self._recorder
        if rec is None:
            return out
        if scheduler_output.total_num_scheduled_tokens == 0:
            rec.update(scheduler_output)  # keep the mirror's finished requests in step
            return out
        if out is None:  # the usual path: sampling follows in sample_tokens
            self._pending = (scheduler_output, launched)
            return out
        return self._complete(out, scheduler_output, launched)

    def sample_tokens(self, *args: Any, **kwargs: Any) -> Any:
        out = super().sample_tokens(*args, **kwargs)  # type: ignore[misc]
        pending, self._pending = self._pending, None
        if pending is None or self._recorder is None:
            return out
        return self._complete(out, *pending)

    def _complete(self, out: Any, scheduler_output: Any, launched: float) -> Any:
        rec = self._recorder
        assert rec is not None
        if isinstance(out, AsyncModelRunnerOutput):
            return _ReadyTimed(out, self, scheduler_output, launched)
        done = time.perf_counter()
        # CPU time of this thread over the step: on vLLM-CPU (one OpenMP thread) the forward pass's own compute;
        # wall >> cpu means another process took the device core (see capture.cli --min-cpu-share).
        cpu = time.thread_time() - self._cpu0
        rec.prev_ready = done
        rec.record(scheduler_output, done - launched, "sync", cpu_us=round(cpu * 1e6, 1))
        return out

    def shutdown(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
        super().shutdown()  # type: ignore[misc]


class CPURecordingWorker(RecordingMixin, CPUWorker):
    """vLLM-CPU's worker with step recording."""


class CudaRecordingWorker(RecordingMixin, GPUWorker):
    """vLLM's CUDA worker with step recording."""


def worker_qualname(cpu: bool) -> str:
    """The ``--worker-cls`` value for this platform."""
    cls = CPURecordingWorker if cpu else CudaRecordingWorker
    return f"{cls.__module__}.{cls.__qualname__}"
