"""Session fixtures shared across test packages: one emulated server, and an environment for vLLM's own CLI.

The server is started lazily (only when a test asks for it) and once per session, so the reliability probes and
the interop clients (OpenAI SDK, `vllm bench serve`, guidellm) share its ~20-60 s startup.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from llm_emu.server import ServerProcess, ServerSpec

ROOT = Path(__file__).resolve().parent.parent
EMU_DECODE_MS = 10.0
EMU_PROFILE = f"formula:base_us={EMU_DECODE_MS * 1000:.0f},prefill_token_us=5,decode_req_us=0,context_token_us=0"
"""A fixed 10 ms step (+5 us per prefill token): client-side ITL/TPOT are checkable against it."""


@pytest.fixture(scope="session")
def emu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`llm-emu serve` (formula profile, tiny-llama with its Mistral tokenizer) on a free loopback port."""
    tmp = tmp_path_factory.mktemp("emu-server")
    spec = ServerSpec(kind="emulated", model="tiny-llama", profile=EMU_PROFILE, log_path=tmp / "server.log",
                      vllm_args=("--max-model-len", "1024", "--max-num-seqs", "64"))
    with ServerProcess(spec) as srv:
        yield srv


@pytest.fixture(scope="session")
def vllm_cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment in which vLLM's own `vllm` console script runs.

    Installed environments carry the metadata-only `vllm` alias (scripts/install.sh); where it is missing (a dev
    venv not re-installed yet) the same wheel is built and put on PYTHONPATH from a temp dir, so the CLI tests
    still exercise the exact fix. tests/interop/test_vllm_cli.py checks separately that the venv has it.
    """
    pythonpath = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    try:
        version("vllm")
    except PackageNotFoundError:
        wheels = tmp_path_factory.mktemp("vllm-alias")
        whl = subprocess.run([sys.executable, str(ROOT / "scripts/vllm_dist_alias.py"), str(wheels)],
                             capture_output=True, text=True, check=True).stdout.strip()
        target = wheels / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(target), whl], check=True, capture_output=True)
        pythonpath.insert(0, str(target))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}


def venv_script(name: str) -> str:
    """A console script of this interpreter's environment (``vllm``, ``llm-emu``, ``guidellm``)."""
    return str(Path(sys.executable).with_name(name))
