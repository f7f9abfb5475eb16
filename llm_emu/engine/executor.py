"""The emulator's executor: vLLM's own single-process executor, named so the CPU platform keeps it."""

from __future__ import annotations

from vllm.v1.executor.uniproc_executor import UniProcExecutor

from llm_emu.lifetime import die_with_parent


class EmuExecutor(UniProcExecutor):
    """Runs the emulated worker inside the EngineCore process, like a 1-GPU CUDA server.

    A distinct class (instead of ``"uni"``) because the CPU platform rewrites ``"uni"`` to ``"mp"``.
    Tensor and pipeline parallelism need no second process: the one emulated worker stands for all TP x PP
    GPUs (no collective is run), and vLLM's batch queue keeps PP batches in flight on its pipelined timeline.
    """

    supports_pp = True

    def _init_executor(self) -> None:
        # Runs in the EngineCore process: die with the API server even when it is SIGKILLed.
        die_with_parent()
        super()._init_executor()
