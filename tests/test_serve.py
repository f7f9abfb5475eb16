"""`llm-emu serve` command building and input checks (no server started)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from llm_emu.cli import main
from llm_emu.engine.plugin import GATE_ENV, platform_plugin
from llm_emu.errors import UnsupportedFeatureError
from llm_emu.profile.pack import EngineSettings
from llm_emu.profile.resolve import resolve_profile
from llm_emu.serve import add_cli_args, build_command, engine_flags
from tests.factories import LLAMA_8B


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_cli_args(p)
    args, extra = p.parse_known_args(list(argv))
    args.vllm_args = extra
    return args


def test_profile_engine_settings_become_explicit_flags() -> None:
    flags = engine_flags(EngineSettings(block_size=16, async_scheduling=True, max_num_batched_tokens=8192,
                                        max_num_seqs=1024, enable_chunked_prefill=False), [])
    assert flags[flags.index("--block-size") + 1] == "16"
    assert flags[flags.index("--max-num-batched-tokens") + 1] == "8192"
    assert "--async-scheduling" in flags and "--no-enable-chunked-prefill" in flags


def test_user_flags_win_over_the_profile() -> None:
    flags = engine_flags(EngineSettings(), ["--max-num-seqs=64", "--no-async-scheduling", "--block_size", "32"])
    assert "--max-num-seqs" not in flags and "--async-scheduling" not in flags and "--block-size" not in flags


def test_command_carries_settings_in_additional_config() -> None:
    args = _args("--profile", "aic:h100_sxm", "--model", "llama-3.1-8b", "--seed", "3", "--max-model-len", "4096")
    cmd = build_command(args, resolve_profile("aic:h100_sxm", LLAMA_8B))
    cfg = json.loads(cmd[cmd.index("--additional-config") + 1])
    assert cfg == {"llm_emu": {"profile": "aic:h100_sxm", "oracle": None, "seed": 3, "trace": None, "clock": "wall"}}
    assert cmd[-2:] == ["--max-model-len", "4096"] and cmd[cmd.index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize("flag", [["--speculative-config", "{}"], ["--enable-lora"], ["-tp", "2"],
                                  ["--tensor-parallel-size=4"]])
def test_unemulated_features_are_refused(flag: list[str]) -> None:
    with pytest.raises(UnsupportedFeatureError, match="remove the flag"):
        build_command(_args("--profile", "formula:", *flag), resolve_profile("formula:", LLAMA_8B))


def test_tp1_is_fine() -> None:
    build_command(_args("--profile", "formula:", "--tensor-parallel-size", "1"), resolve_profile("formula:", LLAMA_8B))


def test_bad_profile_is_one_line_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--profile", "/nonexistent/pack", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llm-emu serve: error:") and "\n" not in err and "Traceback" not in err


def test_platform_plugin_is_inert_without_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GATE_ENV, raising=False)
    assert platform_plugin() is None
    monkeypatch.setenv(GATE_ENV, "1")
    assert platform_plugin() == "llm_emu.engine.platform.EmuPlatform"


@pytest.mark.parametrize(("gate", "expected"), [(None, "CpuPlatform"), ("1", "EmuPlatform")])
def test_vllm_picks_the_platform_only_when_asked(gate: str | None, expected: str) -> None:
    """Plain vLLM in the same environment is unaffected: the real plugin discovery decides."""
    env = {k: v for k, v in os.environ.items() if k != GATE_ENV}
    if gate:
        env[GATE_ENV] = gate
    out = subprocess.run([sys.executable, "-c", "from vllm.platforms import current_platform as p; "
                          "print(type(p).__name__)"], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == expected, out.stderr[-2000:]
