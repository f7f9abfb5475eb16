"""The target device's KV-cache budget, computed the way vLLM's GPU worker does, without allocating anything.

vLLM (gpu_worker.determine_available_memory) gives each GPU's KV cache
``total_memory * gpu_memory_utilization - (weights + peak activations + non-torch memory)``, per worker. Under
tensor and pipeline parallelism every GPU holds a *shard* of the model (``Shard``): its pipeline stage's layers,
with heads, MLP columns and the vocabulary split across the TP ranks. Weights follow from the model config; the
activation peak of vLLM's profile run and the non-torch memory are estimated here (a measured pack records
num_gpu_blocks instead and this module is not used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "fp8": 1, "auto": 2}

#: Non-torch memory (cuBLAS workspaces, CUDA context share) a 1-GPU vLLM server reports; estimated.
NON_TORCH_BYTES = 512 * 2**20

#: Extra non-torch memory per GPU for NCCL communicators at a TP degree (observed on H100 servers, as recorded
#: in aiconfigurator's system specs: 342 MiB at TP 2, 392 MiB at TP 4 and 8); estimated.
NCCL_BYTES = {1: 0, 2: 342 * 2**20, 4: 392 * 2**20, 8: 392 * 2**20}

#: vLLM pads the vocabulary to a multiple of this before splitting it across TP ranks.
VOCAB_PADDING = 64


@dataclass(frozen=True)
class Shard:
    """The part of the model one GPU holds under TP x PP."""

    tensor_parallel_size: int = 1
    """TP degree: attention heads, MLP columns and the vocabulary are split this many ways."""
    num_layers: int | None = None
    """Decoder layers on this GPU (its pipeline stage); None: all of them (PP = 1)."""
    first: bool = True
    """Holds the input embedding (first pipeline stage)."""
    last: bool = True
    """Holds the final norm, the LM head and the sampler (last pipeline stage)."""


@dataclass(frozen=True)
class KVBudget:
    """Breakdown of one GPU's KV budget in bytes."""

    requested: int
    """total memory x gpu_memory_utilization."""
    weights: int
    """This GPU's shard of the weights."""
    activations: int
    """Peak activations of vLLM's profile run on this GPU (estimated)."""
    non_torch: int
    """CUDA/cuBLAS/NCCL memory outside torch's allocator (estimated)."""

    @property
    def kv_cache(self) -> int:
        """Bytes left for the KV cache."""
        return max(0, self.requested - self.weights - self.activations - self.non_torch)


def _get(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return default


def _shape(cfg: dict[str, Any]) -> tuple[int, int, int, int, int, int, int]:
    """(hidden, layers, heads, kv_heads, head_dim, intermediate, vocab) of a dense decoder config."""
    h = int(_get(cfg, "hidden_size"))
    heads = int(_get(cfg, "num_attention_heads"))
    return (h, int(_get(cfg, "num_hidden_layers")), heads, int(_get(cfg, "num_key_value_heads", default=heads)),
            int(_get(cfg, "head_dim", default=h // heads)), int(_get(cfg, "intermediate_size")),
            int(_get(cfg, "vocab_size")))


def rank_parameters(cfg: dict[str, Any], shard: Shard = Shard()) -> int:
    """Parameters one GPU holds: its stage's layers split TP ways (KV heads replicated when fewer than TP)."""
    h, layers, heads, kv_heads, head_dim, inter, vocab = _shape(cfg)
    tp = shard.tensor_parallel_size
    n_layers = layers if shard.num_layers is None else shard.num_layers
    attn = 2 * h * heads * head_dim // tp + 2 * h * max(1, kv_heads // tp) * head_dim
    per_layer = attn + 3 * h * inter // tp + 2 * h
    padded_vocab = -(-vocab // VOCAB_PADDING) * VOCAB_PADDING
    vocab_rank = -(-padded_vocab // tp)
    embed = vocab_rank * h if shard.first else 0
    # A tied LM head is the embedding tensor when both live on this GPU; under PP the last stage loads a copy.
    head = vocab_rank * h if shard.last and not (cfg.get("tie_word_embeddings") and shard.first) else 0
    return embed + head + n_layers * per_layer + (h if shard.last else 0)


def num_parameters(cfg: dict[str, Any]) -> int:
    """Parameter count of a decoder-only transformer from its HF config (dense models)."""
    return rank_parameters(cfg, Shard())


def nccl_bytes(tensor_parallel_size: int) -> int:
    """NCCL memory per GPU at this TP degree (the nearest recorded degree at or below it)."""
    return NCCL_BYTES[max(k for k in NCCL_BYTES if k <= max(1, tensor_parallel_size))]


def kv_budget(
    cfg: dict[str, Any],
    memory_bytes: int,
    gpu_memory_utilization: float,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    dtype: str = "bfloat16",
    shard: Shard = Shard(),
) -> KVBudget:
    """Estimate what vLLM would give the KV cache on one GPU with ``memory_bytes`` holding ``shard``."""
    nbytes = DTYPE_BYTES.get(dtype, 2)
    h, _, _, _, _, inter, vocab = _shape(cfg)
    tp = shard.tensor_parallel_size
    # Profile run: one forward over max_num_batched_tokens (MLP up/gate dominate, split TP ways) + on the last
    # stage the fp32 logits of the sampler's dummy run over max_num_seqs.
    activations = max_num_batched_tokens * (2 * inter // tp + 4 * h) * nbytes
    if shard.last:
        activations += max_num_seqs * vocab * 4 * 2
    return KVBudget(
        requested=int(memory_bytes * gpu_memory_utilization),
        weights=rank_parameters(cfg, shard) * nbytes,
        activations=activations,
        non_torch=NON_TORCH_BYTES + nccl_bytes(tp),
    )


def kv_bytes_per_token(cfg: dict[str, Any], dtype: str = "bfloat16", shard: Shard = Shard()) -> int:
    """K+V bytes one token occupies on one GPU (its stage's layers, its TP share of the KV heads)."""
    _, layers, _, kv_heads, head_dim, _, _ = _shape(cfg)
    n_layers = layers if shard.num_layers is None else shard.num_layers
    kv_rank = max(1, kv_heads // shard.tensor_parallel_size)
    return 2 * kv_rank * head_dim * DTYPE_BYTES.get(dtype, 2) * n_layers
