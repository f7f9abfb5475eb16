"""Everything that depends on the vLLM version lives here (supported: vLLM >=0.24,<0.34; CI tests the CPU build 0.28,
0.30 and 0.32: scripts/version_window.sh)."""

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


def refused_body_field(body: Any) -> tuple[str, str] | None:
    """(message, parameter) for a request-body field the emulator refuses before vLLM parses it, else None.

    For fields vLLM drops at its protocol layer, so ``validate_request`` never sees them: vLLM >= 0.24 has no
    ``best_of`` (neither in the completion/chat request models nor in SamplingParams) and ignores it with a
    debug log. A client sending best_of=3 expects 3 candidates per prompt; neither real vLLM nor the emulator
    generates them, so the request is refused as loudly as n > 1 rather than measured as something else.
    """
    best_of = body.get("best_of") if isinstance(body, dict) else None
    if isinstance(best_of, int) and not isinstance(best_of, bool) and best_of > 1:
        return (f"llm-emu: best_of={best_of} is not emulated (vLLM itself drops best_of and would generate one "
                "candidate, not several); drop best_of or send best_of=1", "best_of")
    return None


#: `vllm serve` flags the emulator refuses at startup, with the reason (sizes of 1 are accepted).
UNSUPPORTED_FLAGS: dict[str, str] = {
    "--speculative-config": "speculative decoding is not emulated (acceptance would be invented)",
    "--enable-lora": "LoRA adapters are not emulated",
    "--decode-context-parallel-size": "decode context parallelism is not emulated",
    "--prefill-context-parallel-size": "prefill context parallelism is not emulated",
}

#: Short aliases vLLM's parser accepts for long flags.
FLAG_ALIASES: dict[str, str] = {
    "-tp": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size",
    "-dp": "--data-parallel-size",
    "-dcp": "--decode-context-parallel-size",
    "-pcp": "--prefill-context-parallel-size",
}


def _flag_values(vllm_args: list[str]) -> list[tuple[str, str | None]]:
    """(canonical long flag, value or None) for every flag in a `vllm serve` argv."""
    out: list[tuple[str, str | None]] = []
    for i, arg in enumerate(vllm_args):
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.partition("=")
        flag = FLAG_ALIASES.get(name, name.replace("_", "-"))
        if not eq:
            nxt = vllm_args[i + 1] if i + 1 < len(vllm_args) else None
            out.append((flag, nxt if nxt is not None and not nxt.startswith("-") else None))
        else:
            out.append((flag, value))
    return out


def check_flags(vllm_args: list[str]) -> None:
    """Raise UnsupportedFeatureError for `vllm serve` flags the emulator cannot honour."""
    for flag, value in _flag_values(vllm_args):
        reason = UNSUPPORTED_FLAGS.get(flag)
        if reason is None or (flag.endswith("-size") and value == "1"):
            continue
        raise UnsupportedFeatureError(f"{flag}: {reason}; remove the flag")


def parallel_size(vllm_args: list[str], flag: str) -> int:
    """The value of a parallel-size flag (e.g. ``--tensor-parallel-size`` or ``-tp``) in a `vllm serve` argv.

    Raises:
        UnsupportedFeatureError: when the value is not a positive integer.
    """
    size = 1
    for name, value in _flag_values(vllm_args):
        if name != flag:
            continue
        if value is None or not value.isdigit() or int(value) < 1:
            raise UnsupportedFeatureError(f"{flag} {value!r} is not a positive integer; pass e.g. {flag} 4")
        size = int(value)
    return size


def data_parallel_rank(vllm_config: Any) -> int:
    """The data-parallel replica an engine core serves.

    vLLM (0.28 to 0.32 at least) resets ``data_parallel_rank`` to 0 in each engine core of a dense model (its
    replicas are independent) and keeps the replica in ``data_parallel_index``, which older releases lack.
    """
    pc = vllm_config.parallel_config
    index = getattr(pc, "data_parallel_index", None)
    return int(index if index is not None else pc.data_parallel_rank)


def vllm_version() -> tuple[int, int]:
    """(major, minor) of the installed vLLM (CPU or CUDA build)."""
    import vllm

    major, minor = [*vllm.__version__.split("+")[0].split("."), "0"][:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def async_scheduling_with_pp() -> bool:
    """Whether this vLLM keeps async scheduling with PP > 1 on the model runner the emulator gets.

    Up to 0.30 the V1 model runner accepts it (PP batches in flight). From 0.31 on vLLM refuses async
    scheduling with PP on the V1 runner and only Model Runner V2 keeps it (default on CUDA, PP + 1 batches in
    flight); V2 needs Triton on a GPU, so the CPU build runs V1 and PP runs synchronously there.
    """
    return vllm_version() < (0, 31)


def pipeline_stage_layers(num_layers: int, pipeline_parallel_size: int) -> list[range]:
    """The decoder layers of each pipeline stage, partitioned exactly as vLLM partitions them."""
    from vllm.distributed.utils import get_pp_indices

    return [range(*get_pp_indices(num_layers, rank, pipeline_parallel_size)) for rank in range(pipeline_parallel_size)]
# ---- virtual time: vLLM's benchmark client and OpenAI front end, used in-process (llm_emu.virtual) ----------
def apply_client_arg_defaults(args: Any) -> None:
    """The argument mapping `vllm bench serve` applies before sampling (vllm/benchmarks/serve.py main_async)."""
    from llm_emu.errors import WorkloadError

    if getattr(args, "ramp_up_strategy", None) is not None:
        raise WorkloadError("virtual time does not support --ramp-up-strategy yet; use a fixed --request-rate")
    if args.dataset_name == "timed_trace":
        raise WorkloadError("virtual time does not support the timed_trace dataset yet; use wall-clock mode")
    if getattr(args, "input_len", None) is not None:
        args.random_input_len = args.input_len
    if getattr(args, "output_len", None) is not None:
        for name in ("random_output_len", "sharegpt_output_len", "custom_output_len", "hf_output_len",
                     "spec_bench_output_len", "prefix_repetition_output_len"):
            setattr(args, name, args.output_len)
    if args.dataset_name in ("random", "random-mm"):
        args.ignore_eos = True  # the client's default for random datasets on OpenAI-compatible backends
    args.self_timed = False


_CLIENT_TOKENIZERS: dict[tuple[str, str, bool], Any] = {}


def client_tokenizer(args: Any) -> Any:
    """The tokenizer the benchmark client samples prompts with (loaded once per process)."""
    from vllm.tokenizers import get_tokenizer

    key = (args.tokenizer or args.model, args.tokenizer_mode, bool(args.trust_remote_code))
    if key not in _CLIENT_TOKENIZERS:
        _CLIENT_TOKENIZERS[key] = get_tokenizer(key[0], tokenizer_mode=key[1], trust_remote_code=key[2])
    return _CLIENT_TOKENIZERS[key]


def sample_client_requests(args: Any, tokenizer: Any) -> list[Any]:
    """vLLM's own dataset sampling for the benchmark client."""
    from vllm.benchmarks.datasets import get_samples

    return list(get_samples(args, tokenizer))


def client_goodput(args: Any) -> dict[str, float]:
    """vLLM's parsed --goodput config (metric -> ms)."""
    from vllm.benchmarks.serve import check_goodput_args

    return dict(check_goodput_args(args) or {})


def client_extra_body(args: Any) -> dict[str, Any]:
    """Sampling parameters the client adds to every request body (vllm bench serve main_async)."""
    names = ("top_p", "top_k", "min_p", "temperature", "frequency_penalty", "presence_penalty", "repetition_penalty")
    params = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return {**params, **(getattr(args, "extra_body", None) or {})}


def completion_payload(args: Any, request: Any) -> dict[str, Any]:
    """The JSON body vLLM's client posts to /v1/completions for one sampled request."""
    payload: dict[str, Any] = {
        "model": args.served_model_name or args.model,
        "prompt": request.prompt,
        "repetition_penalty": 1.0,
        "max_tokens": request.expected_output_len or 0,
        "logprobs": args.logprobs,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if args.ignore_eos:
        payload["ignore_eos"] = True
    payload.update(client_extra_body(args))
    payload.update(getattr(request, "request_overrides", None) or {})
    return payload


def render_completion(engine: Any, payload: dict[str, Any], defaults: dict[str, Any]) -> tuple[Any, Any]:
    """What vLLM's OpenAI server makes of a completion body: (engine input with token ids, SamplingParams).

    ``defaults`` is the server's ``model_config.get_diff_sampling_param()`` (computed once, like the server).
    Detokenisation is skipped unless the request has stop strings: the client's metrics count chunks and the
    usage's completion_tokens, never the text, and detokenising is a quarter of the virtual run's CPU time.
    """
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest
    from vllm.entrypoints.serve.utils.api_utils import get_max_tokens
    from vllm.renderers.inputs.preprocess import extract_prompt_len

    request = CompletionRequest(**payload)
    model_config = engine.model_config
    engine_input = engine.renderer.render_cmpl([{"prompt": request.prompt}],
                                               request.build_tok_params(model_config))[0]
    max_tokens = get_max_tokens(model_config.max_model_len, request.max_tokens,
                                extract_prompt_len(model_config, engine_input), defaults, None,
                                truncate_prompt_tokens=request.truncate_prompt_tokens)
    params = request.to_sampling_params(max_tokens, defaults)
    if not params.stop:
        params.detokenize = False
    return engine_input, params


def server_sampling_defaults(engine: Any) -> dict[str, Any]:
    """The OpenAI server's default sampling parameters (from the model's generation config)."""
    return dict(engine.model_config.get_diff_sampling_param() or {})


def benchmark_result(requests: list[Any], outputs: list[Any], duration_s: float, tokenizer: Any,
                     args: Any, goodput: dict[str, float]) -> dict[str, Any]:
    """The result dict of `vllm bench serve` from per-request outputs, through vLLM's own calculate_metrics."""
    import datetime

    from vllm.benchmarks.serve import calculate_metrics

    percentiles = [float(p) for p in args.metric_percentiles.split(",")]
    setup: dict[str, Any] = {  # main_async's header fields, in its order
        "date": datetime.datetime.now().strftime("%Y%m%d-%H%M%S"), "endpoint_type": args.backend,
        "backend": args.backend, "label": args.label, "model_id": args.model,
        "tokenizer_id": args.tokenizer if args.tokenizer is not None else args.model,
        "num_prompts": args.num_prompts,
    }
    for item in args.metadata or ():
        key, _, value = item.partition("=")
        setup[key.strip()] = value.strip()
    setup["request_rate"] = args.request_rate if args.request_rate < float("inf") else "inf"
    setup["burstiness"] = args.burstiness
    setup["max_concurrency"] = args.max_concurrency
    metrics, output_lens = calculate_metrics(input_requests=requests, outputs=outputs, dur_s=duration_s,
                                             tokenizer=tokenizer, selected_percentiles=percentiles,
                                             goodput_config_dict=goodput)
    result: dict[str, Any] = {
        **setup,
        "duration": duration_s, "completed": metrics.completed, "failed": metrics.failed,
        "total_input_tokens": metrics.total_input, "total_output_tokens": metrics.total_output,
        "request_throughput": metrics.request_throughput,
        "request_goodput": metrics.request_goodput if goodput else None,
        "output_throughput": metrics.output_throughput, "total_token_throughput": metrics.total_token_throughput,
        "input_lens": [o.prompt_len for o in outputs], "output_lens": output_lens,
        "ttfts": [o.ttft for o in outputs], "itls": [o.itl for o in outputs],
        "latencies": [o.latency for o in outputs], "start_times": [o.start_time for o in outputs],
        "queue_times": [o.client_queue_time for o in outputs], "errors": [o.error for o in outputs],
        "max_output_tokens_per_s": metrics.max_output_tokens_per_s,
        "max_concurrent_requests": metrics.max_concurrent_requests, "rtfx": metrics.rtfx,
    }
    selected = (args.percentile_metrics or "ttft,tpot,itl").split(",")
    # vLLM's client also reports client_queue_time metrics when they are selected; llm-emu never selects them.
    for name in ("ttft", "tpot", "itl", "e2el"):
        if name not in selected:
            continue
        result[f"mean_{name}_ms"] = getattr(metrics, f"mean_{name}_ms")
        result[f"median_{name}_ms"] = getattr(metrics, f"median_{name}_ms")
        result[f"std_{name}_ms"] = getattr(metrics, f"std_{name}_ms")
        for p, value in getattr(metrics, f"percentiles_{name}_ms"):
            result[f"p{int(p) if int(p) == p else p}_{name}_ms"] = value
    return result


def make_inproc_engine(engine_args: Any) -> Any:
    """vLLM's ``LLMEngine`` with the EngineCore in this process (no ZMQ, no child process)."""
    import os

    from vllm.v1.engine.llm_engine import LLMEngine

    # LLMEngine reads this when it is built; the virtual-time runner process is ours alone.
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return LLMEngine.from_engine_args(engine_args, enable_multiprocessing=False)


def engine_args_from_serve_flags(flags: list[str]) -> Any:
    """Parse `vllm serve` flags with vLLM's own server parser into EngineArgs (frontend-only flags ignored)."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="llm-emu virtual"))
    engine_args = EngineArgs.from_cli_args(parser.parse_args(flags))
    engine_args.disable_log_stats = True
    return engine_args


def request_func_output() -> Any:
    """An empty ``RequestFuncOutput`` of vLLM's benchmark client (what one streamed request records)."""
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput

    return RequestFuncOutput()


# ---- spec checks before anything starts: engine-arg names and values as vLLM's own server parser reads them ---
def engine_arg_names() -> frozenset[str]:
    """vLLM's engine argument names (``EngineArgs`` fields, underscores)."""
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    return frozenset(f.name for f in dataclasses.fields(EngineArgs))


class _ParseError(Exception):
    """What vLLM's server parser would print before exiting."""


def serve_flags_checker() -> Any:
    """A function ``flags -> None | message``: parses `vllm serve` flags with vLLM's own server parser.

    The message is vLLM's own argparse complaint (e.g. ``argument --max-num-seqs: invalid int value: 'abc'``);
    nothing is printed and nothing exits.
    """
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    class RaisingParser(FlexibleArgumentParser):  # type: ignore[misc]
        def error(self, message: str) -> Any:  # argparse's hook: raise instead of print + exit(2)
            raise _ParseError(message)

    parser = make_arg_parser(RaisingParser(prog="vllm serve", allow_abbrev=False))

    def check(flags: list[str]) -> str | None:
        try:
            parser.parse_args(flags)
        except _ParseError as exc:
            return str(exc)
        return None

    return check
