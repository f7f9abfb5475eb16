"""`llm-emu serve`: vLLM's own OpenAI server, unpatched, with the device emulated from a profile."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from typing import Any

from llm_emu.engine import compat
from llm_emu.engine.parallel import ParallelLayout, for_layout
from llm_emu.engine.plugin import GATE_ENV
from llm_emu.engine.settings import EmuSettings
from llm_emu.errors import EmuError, ServerError
from llm_emu.flags import flag_given, render_flags
from llm_emu.models import require_model_config, resolve_model
from llm_emu.profile.pack import EngineSettings, ProfilePack

REQUEST_MIDDLEWARE = "llm_emu.engine.middleware.RefuseUnemulatedFields"
"""ASGI middleware (vLLM's own --middleware hook) refusing request fields vLLM drops before the engine."""


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu serve`; every other flag goes to `vllm serve` unchanged."""
    from llm_emu.profile.resolve import gpu_help

    parser.add_argument("--profile", required=True,
                        help="profile pack dir, aic-cal:<gpu> (GPU-free estimate calibrated on public runs, e.g. "
                             "aic-cal:h100_sxm), aic:<gpu> (uncalibrated aiconfigurator estimate) or "
                             f"formula:[k=v,...]. GPUs: {gpu_help().replace('%', '%%')}")
    parser.add_argument("--model", default="llama-3.1-8b",
                        help="shipped model name (llm_emu/data/models), model dir or HF id (default %(default)s)")
    parser.add_argument("--oracle", default=None, help="latency oracle (default: the profile's own)")
    parser.add_argument("--seed", type=int, default=0, help="seed of latency draws and synthetic tokens")
    parser.add_argument("--trace", default=None, help="append one JSON line per engine step to this file")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the vLLM command line and exit")


def engine_flags(engine: EngineSettings, user: list[str]) -> list[str]:
    """The profiled server's resolved engine config as `vllm serve` flags, where the user did not set them.

    Passing them explicitly matters: on the CPU platform vLLM would otherwise pick CPU defaults
    (block size 128, 2048/128 batch limits, async scheduling off).
    """
    wanted: dict[str, Any] = {
        "block_size": engine.block_size,
        "max_num_batched_tokens": engine.max_num_batched_tokens,
        "max_num_seqs": engine.max_num_seqs,
        "gpu_memory_utilization": engine.gpu_memory_utilization,
        "max_model_len": engine.max_model_len,
        "enable_chunked_prefill": engine.enable_chunked_prefill,
        "enable_prefix_caching": engine.enable_prefix_caching,
        "async_scheduling": engine.async_scheduling,
        "load_format": "dummy",
    }
    return render_flags(wanted, skip_given=user)


def build_command(args: argparse.Namespace, pack: ProfilePack) -> list[str]:
    """The full `python -m vllm.entrypoints.openai.api_server ...` command line."""
    user = list(getattr(args, "vllm_args", []) or [])
    if flag_given(user, "additional-config"):
        raise EmuError("--additional-config is used by llm-emu to reach its worker; remove it")
    compat.check_flags(user)
    settings = EmuSettings(profile=args.profile, oracle=args.oracle, seed=args.seed,
                           trace=os.path.abspath(args.trace) if args.trace else None,
                           clock=getattr(args, "clock", "wall"))
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        *resolve_model(args.model).server_flags(),
        "--host", args.host, "--port", str(args.port),
        *engine_flags(pack.meta.engine, user),
        "--additional-config", settings.to_additional_config(),
        "--middleware", REQUEST_MIDDLEWARE,
        *user,
    ]



def check_port(host: str, port: int) -> None:
    """Raise ServerError (one line) unless vLLM will be able to listen on ``host:port``.

    Binds the way vLLM does (SO_REUSEADDR, so a port in TIME_WAIT still counts as free) and lets go at once:
    without this a busy port surfaces as vLLM's traceback after the whole engine has started.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            fix = {errno.EADDRINUSE: "another process listens there; pick a free port with --port or stop it",
                   errno.EACCES: "ports below 1024 need privileges; pick a port >= 1024 with --port",
                   errno.EADDRNOTAVAIL: "the address is not one of this machine's; fix --host"}
            raise ServerError(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                              f"{fix.get(e.errno or 0, 'fix --host/--port')}") from None


def load_and_check(args: argparse.Namespace) -> ProfilePack:
    """Resolve the profile and build its oracle once, so bad input fails here with one clear line."""
    from llm_emu.oracle import create_oracle
    from llm_emu.profile.resolve import resolve_profile

    user = list(getattr(args, "vllm_args", []) or [])
    compat.check_flags(user)
    pack = for_layout(resolve_profile(args.profile, require_model_config(args.model)), ParallelLayout.from_flags(user))
    create_oracle(pack, args.oracle, seed=args.seed)
    return pack


def main(args: argparse.Namespace) -> int:
    """Validate, then replace this process with vLLM's server (signals reach vLLM directly)."""
    pack = load_and_check(args)
    cmd = build_command(args, pack)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    check_port(args.host, args.port)
    print(f"llm-emu: emulating {pack.label} with vLLM's own server on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    env = {**os.environ, GATE_ENV: "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    os.execve(sys.executable, cmd, env)
    return 0  # unreachable
