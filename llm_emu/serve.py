"""`llm-emu serve`: vLLM's own OpenAI server, unpatched, with the device emulated from a profile."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from llm_emu.engine import compat
from llm_emu.engine.plugin import GATE_ENV
from llm_emu.engine.settings import EmuSettings
from llm_emu.errors import EmuError
from llm_emu.models import load_model_config, resolve_model
from llm_emu.profile.pack import EngineSettings, ProfilePack


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llm-emu serve`; every other flag goes to `vllm serve` unchanged."""
    from llm_emu.profile.resolve import gpu_help

    parser.add_argument("--profile", required=True,
                        help="profile pack dir, aic-cal:<gpu> (GPU-free estimate calibrated on public runs, e.g. "
                             "aic-cal:h100_sxm), aic:<gpu> (uncalibrated aiconfigurator estimate) or "
                             f"formula:[k=v,...]. GPUs: {gpu_help()}")
    parser.add_argument("--model", default="llama-3.1-8b",
                        help="shipped model config (profiles/models/<name>), model dir or HF id (default %(default)s)")
    parser.add_argument("--oracle", default=None, help="latency oracle (default: the profile's own)")
    parser.add_argument("--seed", type=int, default=0, help="seed of latency draws and synthetic tokens")
    parser.add_argument("--trace", default=None, help="append one JSON line per engine step to this file")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the vLLM command line and exit")


def _given(flags: list[str], name: str) -> bool:
    """Did the user pass ``--name`` (or ``--no-name``, ``--name=..``, underscore spelling)?"""
    base = name.lstrip("-")
    forms = {f"--{base}", f"--{base.replace('-', '_')}", f"--no-{base}", f"--no_{base.replace('-', '_')}"}
    return any(a.split("=", 1)[0] in forms for a in flags)


def _bool_flag(name: str, value: bool) -> str:
    return f"--{name}" if value else f"--no-{name}"


def engine_flags(engine: EngineSettings, user: list[str]) -> list[str]:
    """The profiled server's resolved engine config as `vllm serve` flags, where the user did not set them.

    Passing them explicitly matters: on the CPU platform vLLM would otherwise pick CPU defaults
    (block size 128, 2048/128 batch limits, async scheduling off).
    """
    wanted: list[tuple[str, Any]] = [
        ("block-size", engine.block_size),
        ("max-num-batched-tokens", engine.max_num_batched_tokens),
        ("max-num-seqs", engine.max_num_seqs),
        ("gpu-memory-utilization", engine.gpu_memory_utilization),
        ("max-model-len", engine.max_model_len),
        ("enable-chunked-prefill", engine.enable_chunked_prefill),
        ("enable-prefix-caching", engine.enable_prefix_caching),
        ("async-scheduling", engine.async_scheduling),
        ("load-format", "dummy"),
    ]
    out: list[str] = []
    for name, value in wanted:
        if value is None or _given(user, name):
            continue
        out += [_bool_flag(name, value)] if isinstance(value, bool) else [f"--{name}", str(value)]
    return out


def build_command(args: argparse.Namespace, pack: ProfilePack) -> list[str]:
    """The full `python -m vllm.entrypoints.openai.api_server ...` command line."""
    user = list(getattr(args, "vllm_args", []) or [])
    if _given(user, "additional-config"):
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
        *user,
    ]


def load_and_check(args: argparse.Namespace) -> ProfilePack:
    """Resolve the profile and build its oracle once, so bad input fails here with one clear line."""
    from llm_emu.oracle import create_oracle
    from llm_emu.profile.resolve import resolve_profile

    pack = resolve_profile(args.profile, load_model_config(args.model))
    create_oracle(pack, args.oracle, seed=args.seed)
    return pack


def main(args: argparse.Namespace) -> int:
    """Validate, then replace this process with vLLM's server (signals reach vLLM directly)."""
    pack = load_and_check(args)
    cmd = build_command(args, pack)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    print(f"llm-emu: emulating {pack.label} with vLLM's own server on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    env = {**os.environ, GATE_ENV: "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    os.execve(sys.executable, cmd, env)
    return 0  # unreachable
