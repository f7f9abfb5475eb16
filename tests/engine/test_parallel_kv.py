"""KV capacity under TP x PP: the one emulated worker makes vLLM's own block computation match TP x PP GPUs.

vLLM gives the scheduler ``min over GPUs of available_bytes // (layers_of_its_stage x page_size)`` with
``page_size = 2 x block_size x kv_heads_per_gpu x head_dim x dtype_bytes`` and ``kv_heads_per_gpu =
max(1, kv_heads // TP)``. The expected counts below are that formula written out; the actual counts come from
vLLM's ``get_kv_cache_configs`` fed with what ``EmuWorker`` reports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from llm_emu.engine import compat
from llm_emu.engine.kvbudget import Shard, kv_budget, num_parameters, rank_parameters
from llm_emu.engine.kvspec import kv_cache_spec, kv_plan
from llm_emu.models import MODELS_DIR, resolve_model
from llm_emu.profile.pack import EngineSettings, ProfileMeta, ProfilePack
from llm_emu.profile.resolve import resolve_profile

pytestmark = pytest.mark.window  # runs on every vLLM release of the version window (scripts/version_window.sh)

LLAMA_70B = json.loads((MODELS_DIR / "llama-3.1-70b" / "config.json").read_text())
GIB = 2**30
BLOCK = 16
KV_HEADS, HEAD_DIM, LAYERS, BF16 = 8, 128, 80, 2


@pytest.fixture(scope="module")
def vllm_config() -> Callable[..., Any]:
    """Build vLLM's own resolved config for Llama-3.1-70B at a TP x PP layout (no server, no GPU)."""
    from vllm.engine.arg_utils import EngineArgs

    model = resolve_model("llama-3.1-70b")

    def build(tp: int, pp: int = 1, **kw: Any) -> Any:
        args = EngineArgs(model=model.model, tokenizer=model.tokenizer, tokenizer_mode="mistral",
                          skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                          pipeline_parallel_size=pp, block_size=BLOCK, max_model_len=4096,
                          max_num_batched_tokens=8192, max_num_seqs=1024, gpu_memory_utilization=0.92, **kw)
        with mock.patch.dict(os.environ):  # vLLM's CPU platform exports variables; keep them out of other tests
            return args.create_engine_config()

    return build


def _vllm_blocks(cfg: Any, pack: ProfilePack) -> int:
    """What vLLM's engine core computes from the emulated worker's report (EngineCore._initialize_kv_caches)."""
    from vllm.v1.core.kv_cache_utils import get_kv_cache_configs

    plan = kv_plan(cfg, pack)
    specs = kv_cache_spec(cfg, plan.layers)
    try:  # vLLM >= 0.32 registers spec types and resolves one KV layout before sizing the cache
        from vllm.v1.attention.backends.utils import resolve_kv_cache_layout
        from vllm.v1.core.single_type_kv_cache_manager import register_all_kvcache_specs
    except ImportError:
        pass
    else:
        register_all_kvcache_specs(cfg)
        layout = resolve_kv_cache_layout(cfg, [compat.kv_cache_layouts()], list(specs.values()))
        cfg.cache_config.kv_cache_layout = layout.name
    configs = get_kv_cache_configs(cfg, [specs], [plan.available_bytes])
    return int(configs[0].num_blocks)


def _aic_pack() -> ProfilePack:
    return resolve_profile("aic:h100_sxm", LLAMA_70B)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_tp_block_count_is_vllms_formula(vllm_config: Callable[..., Any], tp: int) -> None:
    per_gpu = 20 * GIB  # --kv-cache-memory-bytes: vLLM's own per-GPU override
    cfg = vllm_config(tp, kv_cache_memory_bytes=per_gpu)
    page = 2 * BLOCK * max(1, KV_HEADS // tp) * HEAD_DIM * BF16
    assert _vllm_blocks(cfg, _aic_pack()) == per_gpu // (LAYERS * page)


def test_pp_block_count_is_the_smallest_stage(vllm_config: Callable[..., Any]) -> None:
    """80 layers over PP 3: vLLM's stages hold 27, 27 and 26 layers; the 27-layer stages limit the count."""
    per_gpu = 10 * GIB
    cfg = vllm_config(2, 3, kv_cache_memory_bytes=per_gpu)
    page = 2 * BLOCK * (KV_HEADS // 2) * HEAD_DIM * BF16
    assert _vllm_blocks(cfg, _aic_pack()) == per_gpu // (27 * page)


def test_estimated_budget_splits_weights_and_grows_with_tp(vllm_config: Callable[..., Any]) -> None:
    blocks = {tp: _vllm_blocks(vllm_config(tp), _aic_pack()) for tp in (2, 4, 8)}
    assert blocks[2] < blocks[4] < blocks[8]
    # TP 2: the weights leave ~4 GiB per GPU; TP 4 ~37 GiB; the estimate must stay in those ranges.
    page = 2 * BLOCK * KV_HEADS // 4 * HEAD_DIM * BF16
    assert 30 * GIB < blocks[4] * LAYERS * page < 45 * GIB


def test_measured_block_count_survives_any_stage_split(vllm_config: Callable[..., Any]) -> None:
    pack = _aic_pack()
    engine = EngineSettings(num_gpu_blocks=5000, tensor_parallel_size=2, pipeline_parallel_size=3)
    measured = ProfilePack(meta=ProfileMeta(**{**pack.meta.__dict__, "engine": engine}), steps=pack.steps,
                           path=Path("/captured"))
    assert _vllm_blocks(vllm_config(2, 3), measured) == 5000


def test_shards_add_up_to_the_model() -> None:
    total = num_parameters(LLAMA_70B)
    assert abs(total - 70.55e9) / 70.55e9 < 0.005  # the published 70.6B
    # TP 8 splits every matrix (8 KV heads / 8 ranks: nothing replicated) except the norms.
    norms = (2 * LAYERS + 1) * 8192
    assert 8 * rank_parameters(LLAMA_70B, Shard(tensor_parallel_size=8)) == total + 7 * norms
    stages = [Shard(num_layers=27, last=False), Shard(num_layers=27, first=False, last=False),
              Shard(num_layers=26, first=False)]
    assert sum(rank_parameters(LLAMA_70B, s) for s in stages) == total


def test_nccl_memory_appears_with_tp() -> None:
    one = kv_budget(LLAMA_70B, 80 * GIB, 0.92, 8192, 1024, shard=Shard(tensor_parallel_size=1))
    four = kv_budget(LLAMA_70B, 80 * GIB, 0.92, 8192, 1024, shard=Shard(tensor_parallel_size=4))
    assert four.non_torch > one.non_torch and four.weights < one.weights / 3.9
