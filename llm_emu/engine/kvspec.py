"""KV-cache specs and budget of the emulated device, in vLLM's own terms (vLLM computes the block count).

Under TP x PP a real server has TP x PP workers; each reports its stage's layers with its TP share of the KV
heads and its own free memory, and vLLM gives the scheduler the *smallest* block count over all of them
(``kv_cache_utils.get_kv_cache_configs``). The one emulated worker reports the limiting GPU: the spec of the
stage with the fewest blocks and that GPU's budget, so vLLM's own arithmetic yields the same block count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from llm_emu.engine import compat
from llm_emu.engine.kvbudget import KVBudget, Shard, kv_budget
from llm_emu.profile.pack import ProfilePack

logger = logging.getLogger("vllm.llm_emu.kv")


@dataclass(frozen=True)
class KVPlan:
    """What the emulated worker reports to vLLM: the limiting GPU of the TP x PP layout."""

    layers: range
    """Decoder layers of the limiting GPU's pipeline stage."""
    available_bytes: int
    """That GPU's KV-cache bytes."""
    stage: int = 0
    """Its pipeline stage."""
    budget: KVBudget | None = None
    """The estimated breakdown (None when the bytes came from an override or a measured block count)."""


def _dtype(vllm_config: Any) -> torch.dtype:
    cache_dtype = vllm_config.cache_config.cache_dtype
    if cache_dtype in (None, "auto"):
        return vllm_config.model_config.dtype  # type: ignore[no-any-return]
    from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE

    return STR_DTYPE_TO_TORCH_DTYPE[cache_dtype]  # type: ignore[no-any-return]


def _layer_spec(vllm_config: Any) -> Any:
    """One layer's FullAttentionSpec on one GPU: vLLM divides the KV heads by TP (at least one per GPU)."""
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    mc, pc = vllm_config.model_config, vllm_config.parallel_config
    return FullAttentionSpec(
        block_size=vllm_config.cache_config.block_size,
        num_kv_heads=mc.get_num_kv_heads(pc),
        head_size=mc.get_head_size(),
        dtype=_dtype(vllm_config),
    )


def stage_layers(vllm_config: Any) -> list[range]:
    """Decoder layers of every pipeline stage, as vLLM partitions them."""
    total = vllm_config.model_config.get_total_num_hidden_layers()
    return compat.pipeline_stage_layers(total, vllm_config.parallel_config.pipeline_parallel_size)


def kv_cache_spec(vllm_config: Any, layers: range | None = None) -> dict[str, Any]:
    """One FullAttentionSpec per attention layer of one GPU, as a CUDA worker reports for a dense decoder."""
    spec = _layer_spec(vllm_config)
    layers = stage_layers(vllm_config)[0] if layers is None else layers
    return {f"model.layers.{i}.self_attn.attn": spec for i in layers}


def _estimated(vllm_config: Any, pack: ProfilePack, stage: int, layers: range) -> KVBudget:
    cache, sched, pc = vllm_config.cache_config, vllm_config.scheduler_config, vllm_config.parallel_config
    shard = Shard(tensor_parallel_size=pc.tensor_parallel_size, num_layers=len(layers), first=stage == 0,
                  last=stage == pc.pipeline_parallel_size - 1)
    return kv_budget(pack.meta.model_config, pack.meta.device.memory_bytes, cache.gpu_memory_utilization,
                     sched.max_num_batched_tokens, sched.max_num_seqs,
                     str(vllm_config.model_config.dtype).replace("torch.", ""), shard)


def kv_plan(vllm_config: Any, pack: ProfilePack) -> KVPlan:
    """The limiting GPU's layers and KV bytes; nothing is allocated.

    Priority: ``--kv-cache-memory-bytes`` (vLLM's own override, per GPU), the profiled server's num_gpu_blocks,
    then each GPU's budget computed like vLLM's GPU worker (estimated).
    """
    stages = stage_layers(vllm_config)
    page = _layer_spec(vllm_config).page_size_bytes
    plans: list[KVPlan] = []
    for stage, layers in enumerate(stages):
        if vllm_config.cache_config.kv_cache_memory_bytes:
            plans.append(KVPlan(layers, int(vllm_config.cache_config.kv_cache_memory_bytes), stage))
        elif pack.meta.engine.num_gpu_blocks:
            plans.append(KVPlan(layers, int(pack.meta.engine.num_gpu_blocks) * page * len(layers), stage))
        else:
            budget = _estimated(vllm_config, pack, stage, layers)
            plans.append(KVPlan(layers, budget.kv_cache, stage, budget))
    return min(plans, key=lambda p: p.available_bytes // (page * max(1, len(p.layers))))


def log_plan(plan: KVPlan, vllm_config: Any, pack: ProfilePack) -> None:
    """One startup line saying where the KV budget came from."""
    pc = vllm_config.parallel_config
    where = "" if pc.world_size == 1 else (
        f", per GPU of TP={pc.tensor_parallel_size} x PP={pc.pipeline_parallel_size}, limiting GPU in stage "
        f"{plan.stage} ({len(plan.layers)} layers)")
    b, gib = plan.budget, 2**30
    if b is None and pack.meta.engine.num_gpu_blocks and not vllm_config.cache_config.kv_cache_memory_bytes:
        logger.info("llm-emu: KV cache of the profiled server: %d blocks (measured)", pack.meta.engine.num_gpu_blocks)
    elif b is not None:
        logger.info(
            "llm-emu: %s budget (estimated%s): %.2f GiB x %.2f = %.2f GiB; weights %.2f GiB, activations %.2f "
            "GiB, non-torch %.2f GiB -> KV cache %.2f GiB",
            pack.meta.device.name, where, pack.meta.device.memory_bytes / gib,
            vllm_config.cache_config.gpu_memory_utilization, b.requested / gib, b.weights / gib,
            b.activations / gib, b.non_torch / gib, b.kv_cache / gib,
        )
