"""The emulator's vLLM platform: the CPU platform minus the decisions that would make it unlike a GPU server."""

from __future__ import annotations

from typing import Any

from vllm.platforms.cpu import CpuPlatform

from llm_emu.engine import compat

WORKER_QUALNAME = "llm_emu.engine.worker.EmuWorker"


class EmuPlatform(CpuPlatform):
    """CPU platform for vLLM's own processes, with the emulated device's engine behaviour.

    * keeps the async-scheduling decision vLLM made (the CPU platform forces it off);
    * runs the worker in the EngineCore process like a 1-GPU CUDA server (our UniProc executor);
    * installs the emulated worker, which never allocates KV tensors or runs a model;
    * rejects per request what the emulator cannot honour.
    """

    @classmethod
    def check_and_update_config(cls, vllm_config: Any) -> None:
        decided_async = vllm_config.scheduler_config.async_scheduling
        parallel = vllm_config.parallel_config
        if parallel.worker_cls == "auto":
            parallel.worker_cls = WORKER_QUALNAME
        if parallel.distributed_executor_backend in (None, "uni", "mp"):
            parallel.distributed_executor_backend = compat.executor_class()
        super().check_and_update_config(vllm_config)
        # The CPU platform turns async scheduling off unconditionally; a CUDA server keeps vLLM's decision.
        vllm_config.scheduler_config.async_scheduling = decided_async

    @classmethod
    def update_block_size_for_backend(cls, vllm_config: Any) -> None:
        """No attention backend runs here: keep the block size the profiled server used."""

    @classmethod
    def validate_request(cls, processed_inputs: Any, params: Any) -> None:
        """Reject requests whose outputs the emulator cannot produce faithfully (400 to the client)."""
        compat.validate_request(params)
