"""Benchmark workloads: offline datasets prepared for vLLM's benchmark client."""

from llm_emu.workload.sharegpt import sharegpt_path

__all__ = ["sharegpt_path"]
