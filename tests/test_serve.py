"""`llm-emu serve` command building and input checks (no server started)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from llm_emu.cli import _COMMANDS, build_parser, main
from llm_emu.engine import compat
from llm_emu.engine.parallel import ParallelLayout, for_layout
from llm_emu.engine.plugin import GATE_ENV, platform_plugin
from llm_emu.errors import ProfileError, UnsupportedFeatureError
from llm_emu.profile.pack import EngineSettings, load_pack, save_pack
from llm_emu.profile.resolve import resolve_profile
from llm_emu.serve import add_cli_args, build_command, engine_flags
from tests.factories import LLAMA_8B, make_pack

pytestmark = pytest.mark.window  # runs on every vLLM release of the version window (scripts/version_window.sh)


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


@pytest.mark.parametrize("flag", [["--speculative-config", "{}"], ["--enable-lora"], ["-dcp", "2"],
                                  ["--prefill-context-parallel-size=2"]])
def test_unemulated_features_are_refused(flag: list[str]) -> None:
    with pytest.raises(UnsupportedFeatureError, match="remove the flag"):
        build_command(_args("--profile", "formula:", *flag), resolve_profile("formula:", LLAMA_8B))


@pytest.mark.parametrize("flags", [["-tp", "4"], ["--tensor-parallel-size=8", "-pp", "2"], ["-dp", "2"],
                                   ["--decode-context-parallel-size", "1"]])
def test_parallel_layouts_are_passed_to_vllm(flags: list[str]) -> None:
    cmd = build_command(_args("--profile", "formula:", *flags), resolve_profile("formula:", LLAMA_8B))
    assert cmd[-len(flags):] == flags


def test_parallel_sizes_are_read_like_vllm_reads_them() -> None:
    layout = ParallelLayout.from_flags(["--max-num-seqs", "8", "-tp", "4", "--pipeline_parallel_size=2"])
    assert (layout.tensor_parallel_size, layout.pipeline_parallel_size, layout.world_size) == (4, 2, 8)
    with pytest.raises(UnsupportedFeatureError, match="positive integer"):
        ParallelLayout.from_flags(["-tp", "0"])


def test_captured_pack_refuses_another_layout(tmp_path: Path) -> None:
    pack = make_pack()
    engine = replace(pack.meta.engine, tensor_parallel_size=2)
    save_pack(replace(pack, meta=replace(pack.meta, engine=engine)), tmp_path / "pack")
    loaded = load_pack(tmp_path / "pack")
    assert for_layout(loaded, ParallelLayout(2, 1)) is loaded
    with pytest.raises(ProfileError, match=r"captured at TP=2 PP=1 but the server runs TP=4 PP=1; capture a pack"):
        for_layout(loaded, ParallelLayout(4, 1))
    assert main(["serve", "--profile", str(tmp_path / "pack"), "--dry-run", "-tp", "4"]) == 2


def test_constructed_packs_take_the_servers_layout() -> None:
    pack = for_layout(resolve_profile("aic:h100_sxm", LLAMA_8B), ParallelLayout(4, 2))
    eng = pack.meta.engine
    assert (eng.tensor_parallel_size, eng.pipeline_parallel_size) == (4, 2)
    # From vLLM 0.31 the V1 model runner (the CPU build's) refuses async scheduling with PP: never ask for it.
    assert ("--async-scheduling" in engine_flags(eng, [])) == (compat.vllm_version() < (0, 31))


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


@pytest.mark.parametrize("command", [None, *sorted(_COMMANDS)])
def test_every_help_text_renders(command: str | None) -> None:
    # argparse expands %-formatting in help strings: a literal "7.1 %" in generated help (e.g. the GPU
    # evidence line of `serve --help`) raises ValueError only when --help is asked for.
    parser = build_parser(command)
    if command is not None:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    text = parser.format_help()
    assert text.startswith("usage: llm-emu")
