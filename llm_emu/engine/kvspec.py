"""KV-cache specs and budget of the emulated device, in vLLM's own terms (vLLM computes the block count)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from llm_emu.engine.kvbudget import kv_budget
from llm_emu.profile.pack import ProfilePack

logger = logging.getLogger("vllm.llm_emu.kv")


def _dtype(vllm_config: Any) -> torch.dtype:
    cache_dtype = vllm_config.cache_config.cache_dtype
    if cache_dtype in (None, "auto"):
        return vllm_config.model_config.dtype  # type: ignore[no-any-return]
    from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE

    return STR_DTYPE_TO_TORCH_DTYPE[cache_dtype]  # type: ignore[no-any-return]


def kv_cache_spec(vllm_config: Any) -> dict[str, Any]:
    """One FullAttentionSpec per attention layer, as a CUDA worker reports for a dense decoder."""
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    mc, pc = vllm_config.model_config, vllm_config.parallel_config
    spec = FullAttentionSpec(
        block_size=vllm_config.cache_config.block_size,
        num_kv_heads=mc.get_num_kv_heads(pc),
        head_size=mc.get_head_size(),
        dtype=_dtype(vllm_config),
    )
    return {f"model.layers.{i}.self_attn.attn": spec for i in range(mc.get_num_layers(pc))}


def available_kv_bytes(vllm_config: Any, pack: ProfilePack) -> int:
    """Bytes of KV cache on the *target* device; nothing is allocated.

    Priority: ``--kv-cache-memory-bytes`` (vLLM's own override), the profiled server's num_gpu_blocks, then
    the target device's budget computed like vLLM's GPU worker (estimated).
    """
    cache = vllm_config.cache_config
    if cache.kv_cache_memory_bytes:
        return int(cache.kv_cache_memory_bytes)
    specs = kv_cache_spec(vllm_config)
    per_block = sum(s.page_size_bytes for s in specs.values())
    eng = pack.meta.engine
    if eng.num_gpu_blocks:
        logger.info("llm-emu: KV cache of the profiled server: %d blocks (measured)", eng.num_gpu_blocks)
        return int(eng.num_gpu_blocks) * per_block
    sched = vllm_config.scheduler_config
    budget = kv_budget(
        pack.meta.model_config,
        pack.meta.device.memory_bytes,
        cache.gpu_memory_utilization,
        sched.max_num_batched_tokens,
        sched.max_num_seqs,
        str(vllm_config.model_config.dtype).replace("torch.", ""),
    )
    gib = 2**30
    logger.info(
        "llm-emu: %s budget (estimated): %.2f GiB x %.2f = %.2f GiB; weights %.2f GiB, activations %.2f GiB, "
        "non-torch %.2f GiB -> KV cache %.2f GiB",
        pack.meta.device.name, pack.meta.device.memory_bytes / gib, cache.gpu_memory_utilization,
        budget.requested / gib, budget.weights / gib, budget.activations / gib, budget.non_torch / gib,
        budget.kv_cache / gib,
    )
    return budget.kv_cache
