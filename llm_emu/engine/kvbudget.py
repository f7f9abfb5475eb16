"""The target device's KV-cache budget, computed the way vLLM's GPU worker does, without allocating anything.

vLLM (gpu_worker.determine_available_memory) gives the KV cache
``total_memory * gpu_memory_utilization - (weights + peak activations + non-torch memory)``. Weights follow from
the model config; the activation peak of vLLM's profile run and the non-torch memory are estimated here
(a measured pack records num_gpu_blocks instead and this module is not used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "fp8": 1, "auto": 2}

#: Non-torch memory (NCCL buffers, cuBLAS workspaces) a 1-GPU vLLM server reports; estimated.
NON_TORCH_BYTES = 512 * 2**20


@dataclass(frozen=True)
class KVBudget:
    """Breakdown of the KV budget in bytes."""

    requested: int
    weights: int
    activations: int
    non_torch: int

    @property
    def kv_cache(self) -> int:
        """Bytes left for the KV cache."""
        return max(0, self.requested - self.weights - self.activations - self.non_torch)


def _get(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return default


def num_parameters(cfg: dict[str, Any]) -> int:
    """Parameter count of a decoder-only transformer from its HF config (dense models)."""
    h = int(_get(cfg, "hidden_size"))
    layers = int(_get(cfg, "num_hidden_layers"))
    heads = int(_get(cfg, "num_attention_heads"))
    kv_heads = int(_get(cfg, "num_key_value_heads", default=heads))
    head_dim = int(_get(cfg, "head_dim", default=h // heads))
    inter = int(_get(cfg, "intermediate_size"))
    vocab = int(_get(cfg, "vocab_size"))
    attn = h * heads * head_dim * 2 + h * kv_heads * head_dim * 2
    mlp = 3 * h * inter
    embed = vocab * h * (1 if cfg.get("tie_word_embeddings") else 2)
    return embed + layers * (attn + mlp + 2 * h) + h


def kv_budget(
    cfg: dict[str, Any],
    memory_bytes: int,
    gpu_memory_utilization: float,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    dtype: str = "bfloat16",
) -> KVBudget:
    """Estimate what vLLM would give the KV cache on a device with ``memory_bytes``."""
    nbytes = DTYPE_BYTES.get(dtype, 2)
    h = int(_get(cfg, "hidden_size"))
    inter = int(_get(cfg, "intermediate_size"))
    vocab = int(_get(cfg, "vocab_size"))
    # Profile run: one forward over max_num_batched_tokens (MLP up/gate dominate) + fp32 logits of the sampler
    # dummy run over max_num_seqs.
    activations = max_num_batched_tokens * (2 * inter + 4 * h) * nbytes + max_num_seqs * vocab * 4 * 2
    return KVBudget(
        requested=int(memory_bytes * gpu_memory_utilization),
        weights=num_parameters(cfg) * nbytes,
        activations=activations,
        non_torch=NON_TORCH_BYTES,
    )


def kv_bytes_per_token(cfg: dict[str, Any], dtype: str = "bfloat16") -> int:
    """K+V bytes one token occupies across all layers."""
    h = int(_get(cfg, "hidden_size"))
    heads = int(_get(cfg, "num_attention_heads"))
    kv_heads = int(_get(cfg, "num_key_value_heads", default=heads))
    head_dim = int(_get(cfg, "head_dim", default=h // heads))
    return 2 * kv_heads * head_dim * DTYPE_BYTES.get(dtype, 2) * int(_get(cfg, "num_hidden_layers"))
