"""GPU-free estimates for real GPUs from NVIDIA aiconfigurator's measured kernel database (vLLM backend).

Labelled "estimated" everywhere: the numbers come from per-kernel measurements composed by aiconfigurator's
engine-step model, not from end-to-end steps of this model on the device.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from llm_emu.errors import OracleError
from llm_emu.oracle.base import LatencyOracle
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import ProfilePack

# aiconfigurator models the Llama layer structure under these names; configs with the same structure but
# another architecture name (Mistral-7B-v0.3 is a Llama-structured model) are presented as Llama.
_ARCH_ALIASES = {"MistralForCausalLM": "LlamaForCausalLM"}


#: Weight quantizations the ``quant`` oracle parameter accepts -> the ModelOpt ``hf_quant_config.json``
#: aiconfigurator reads next to config.json (FP8 weights and activations, as in NVIDIA's *-FP8 checkpoints).
QUANT_CONFIGS: dict[str, dict[str, Any]] = {
    "fp8": {"producer": {"name": "modelopt"},
            "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None, "exclude_modules": ["lm_head"]}},
}


def _model_dir(model_config: dict[str, Any], quant: str | None = None) -> str:
    cfg = dict(model_config)
    cfg["architectures"] = [_ARCH_ALIASES.get(a, a) for a in cfg.get("architectures", [])]
    tmp = Path(tempfile.mkdtemp(prefix="llm-emu-aic-"))
    (tmp / "config.json").write_text(json.dumps(cfg))
    if quant is not None:
        if quant not in QUANT_CONFIGS:
            raise OracleError(f"unknown quant {quant!r} for the aic oracle; valid are {sorted(QUANT_CONFIGS)}")
        (tmp / "hf_quant_config.json").write_text(json.dumps(QUANT_CONFIGS[quant]))
    return str(tmp)


class AicOracle(LatencyOracle):
    """Engine-step latency from ``aiconfigurator_core.sdk.rust_engine_step.RustForwardPassPerfModel``."""

    name: ClassVar[str] = "aic"
    provenance: ClassVar[str] = "estimated"

    def __init__(self, pack: ProfilePack, seed: int = 0) -> None:
        super().__init__(pack, seed)
        try:
            from aiconfigurator_core.sdk import engine
            from aiconfigurator_core.sdk.rust_engine_step import RustForwardPassPerfModel
        except ImportError:
            raise OracleError(
                "the aic oracle needs aiconfigurator-core; install it with pip install 'llm-emu[aic]'"
            ) from None
        system = pack.meta.oracle_params.get("system")
        if not pack.meta.model_config:
            raise OracleError("the aic oracle needs the model's config.json in the profile (model_config)")
        native = {
            "schema_version": engine.ENGINE_CONFIG_SCHEMA_VERSION,
            "model_name": _model_dir(pack.meta.model_config, pack.meta.oracle_params.get("quant")),
            "system_name": system,
            "backend": "vllm",
            "backend_version": None,
            # The server's parallel layout (llm_emu.engine.parallel.for_layout puts it in the pack): per-GPU
            # shards, TP all-reduces and PP hand-offs are in the estimate; PP's is the time through all stages.
            "tp_size": pack.meta.engine.tensor_parallel_size,
            "pp_size": pack.meta.engine.pipeline_parallel_size,
        }
        try:
            # aiconfigurator prints notices about fallback rows while loading; keep them off our output.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                self._model = RustForwardPassPerfModel.from_native(native)
                self._model.estimate_forward_pass_time_ms(
                    {"scheduled_requests": {"sum_prefill_tokens": 0, "num_prefill_requests": 0,
                                            "num_decode_requests": 1, "sum_decode_kv_tokens": 1}}
                )
        except Exception as exc:
            layout = f"TP={native['tp_size']} PP={native['pp_size']}"
            raise OracleError(f"aiconfigurator cannot model system {system!r} with this model at {layout}: {exc}"
                              ) from None
        self._cache: dict[tuple[int, ...], float] = {}

    def expected(self, features: StepFeatures) -> float:
        key = features.as_tuple()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        query = {
            "sum_prefill_tokens": features.num_prefill_tokens,
            "num_prefill_requests": features.num_prefill_reqs,
            "num_decode_requests": features.num_decode_reqs,
            "sum_decode_kv_tokens": features.decode_context_tokens,
        }
        if features.num_scheduled_tokens == 0:
            return 0.0
        with self._lock:
            ms = self._model.estimate_forward_pass_time_ms({"scheduled_requests": query})
        if ms is None:
            raise OracleError(f"aiconfigurator returned no estimate for {query}")
        value = max(0.0, float(ms)) * 1e-3
        if len(self._cache) < 200_000:
            self._cache[key] = value
        return value
