"""The `llm-emu` command line: one subcommand per job, heavy imports deferred to the job itself."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from llm_emu import __version__
from llm_emu.errors import EmuError

# name -> (one-line help, "module:function" that adds its arguments, "module:function" that runs it)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": (
        "start vLLM's own OpenAI server with the GPU forward pass emulated from a profile",
        "llm_emu.serve:add_cli_args",
        "llm_emu.serve:main",
    ),
    "profile": (
        "capture a profile pack from a real vLLM server (CPU here, CUDA on a GPU machine)",
        "llm_emu.capture.cli:add_cli_args",
        "llm_emu.capture.cli:main",
    ),
    "validate": (
        "measure fidelity: same workload on real vLLM and on the emulator, vLLM's benchmark client",
        "llm_emu.validate.cli:add_cli_args",
        "llm_emu.validate.cli:main",
    ),
    "reference": (
        "replay published real-GPU vLLM runs through the emulator; signed error table per metric",
        "llm_emu.reference.cli:add_cli_args",
        "llm_emu.reference.cli:main",
    ),
    "calibrate": (
        "fit the calibrated GPU-free oracle (aic-cal) on the reference runs, scored leave-one-source-out",
        "llm_emu.reference.fitcli:add_cli_args",
        "llm_emu.reference.fitcli:main",
    ),
    "sweep": (
        "run a sweep or search spec (YAML) on Ray actors hosting emulated servers",
        "orchestrator.cli:add_sweep_args",
        "orchestrator.cli:sweep_main",
    ),
    "report": (
        "turn a sweep's results directory into plots and a markdown/HTML report",
        "orchestrator.cli:add_report_args",
        "orchestrator.cli:report_main",
    ),
}

# Subcommands that forward unknown flags to `vllm serve`.
_PASSTHROUGH = {"serve", "profile", "validate"}


def _resolve(path: str) -> Callable[..., object]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser; only ``command``'s module is imported (others stay cheap for --help)."""
    parser = argparse.ArgumentParser(
        prog="llm-emu",
        description="Serving-native emulator of vLLM, with Ray sweeps and Optuna searches on top.",
    )
    parser.add_argument("--version", action="version", version=f"llm-emu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _resolve(add_args)(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llm-emu` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in _COMMANDS else None
    parser = build_parser(command)
    if command is None:
        args = parser.parse_args(argv)  # --help / --version / error for unknown commands
        parser.print_help()
        return 2
    if command in _PASSTHROUGH:
        args, extra = parser.parse_known_args(argv)
        args.vllm_args = extra
    else:
        args = parser.parse_args(argv)
    try:
        return int(_resolve(_COMMANDS[command][2])(args) or 0)  # type: ignore[call-overload]
    except EmuError as exc:
        print(f"llm-emu {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llm-emu {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
