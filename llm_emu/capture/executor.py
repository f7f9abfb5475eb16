"""vLLM's own single-process executor under a distinct name, for the real vLLM-CPU server.

A 1-GPU CUDA server runs its worker inside the EngineCore process (``UniProcExecutor``), and so does the
emulator. vLLM-CPU rewrites ``"uni"`` to ``"mp"`` (``platforms/cpu.py``), which adds a worker process, an RPC
hop per call and an EngineCore that busy-polls the shared-memory queue while the forward pass runs. Passing
this class as ``--distributed-executor-backend`` (vLLM accepts an ``Executor`` subclass qualname) keeps the
real CPU server in the same process layout as a CUDA server and the emulator. Nothing is overridden.
"""

from __future__ import annotations

from vllm.v1.executor.uniproc_executor import UniProcExecutor


class InProcessExecutor(UniProcExecutor):
    """``UniProcExecutor``, unchanged; a distinct name so the CPU platform keeps it."""
