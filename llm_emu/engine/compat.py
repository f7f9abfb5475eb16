"""Everything that depends on the vLLM version lives here (supported: vLLM >=0.24,<0.34; CI tests 0.32 CPU)."""

from __future__ import annotations

from typing import Any

from llm_emu.errors import UnsupportedFeatureError


def executor_class() -> type:
    """The executor class to hand vLLM's ``distributed_executor_backend``."""
    from llm_emu.engine.executor import EmuExecutor

    return EmuExecutor


def kv_cache_layouts() -> list[str]:
    """KV layouts "our backend" supports (vLLM >= 0.32 asks workers): FlashAttention's NHD (= LBNHC)."""
    return ["LBNHC"]


def _client_error(message: str, parameter: str) -> Exception:
    """vLLM's 400-class request error (>= 0.30 wraps plain ValueErrors raised in generate() into a 500)."""
    try:
        from vllm.exceptions import VLLMValidationError
    except ImportError:  # older vLLM maps ValueError to 400
        return ValueError(message)
    return VLLMValidationError(message, parameter=parameter)


def validate_request(params: Any) -> None:
    """Raise vLLM's request-validation error (HTTP 400) for features the emulator cannot honour."""
    if getattr(params, "structured_outputs", None) is not None:
        raise _client_error("llm-emu: structured outputs (guided decoding) are not emulated; drop "
                            "response_format/structured_outputs from the request", "response_format")
    if getattr(params, "prompt_logprobs", None) is not None:
        raise _client_error("llm-emu: prompt_logprobs are not emulated; drop prompt_logprobs from the request",
                            "prompt_logprobs")
    n = getattr(params, "n", 1) or 1
    if n > 1:
        raise _client_error("llm-emu: n > 1 (parallel sampling) is not emulated yet; send n=1", "n")


#: `vllm serve` flags the emulator refuses at startup, with the reason.
UNSUPPORTED_FLAGS: dict[str, str] = {
    "--speculative-config": "speculative decoding is not emulated (acceptance would be invented)",
    "--enable-lora": "LoRA adapters are not emulated",
    "--tensor-parallel-size": "only TP=1 is emulated so far",
    "--pipeline-parallel-size": "only PP=1 is emulated so far",
    "--data-parallel-size": "data parallelism is not emulated so far (run one emulated server per replica)",
}


def check_flags(vllm_args: list[str]) -> None:
    """Raise UnsupportedFeatureError for `vllm serve` flags the emulator cannot honour."""
    for arg in vllm_args:
        flag = arg.split("=", 1)[0].replace("_", "-")
        if flag in ("-tp",):
            flag = "--tensor-parallel-size"
        reason = UNSUPPORTED_FLAGS.get(flag)
        if reason is None:
            continue
        value = arg.split("=", 1)[1] if "=" in arg else None
        if flag.endswith("-size"):
            idx = vllm_args.index(arg)
            value = value if value is not None else (vllm_args[idx + 1] if idx + 1 < len(vllm_args) else None)
            if value == "1":
                continue
        raise UnsupportedFeatureError(f"{flag}: {reason}; remove the flag")
