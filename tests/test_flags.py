"""Engine args -> `vllm serve` flags: every value kind, user precedence, and vLLM's parser agreeing."""

from __future__ import annotations

import pytest

from llm_emu.errors import EmuError
from llm_emu.flags import flag_given, render_flags, render_value


@pytest.mark.parametrize(("key", "value", "flags"), [
    ("max_num_seqs", 64, ["--max-num-seqs", "64"]),
    ("gpu-memory-utilization", 0.9, ["--gpu-memory-utilization", "0.9"]),
    ("--kv-cache-dtype", "fp8", ["--kv-cache-dtype", "fp8"]),
    ("kv_cache_dtype", None, []),
    ("enable_prefix_caching", True, ["--enable-prefix-caching"]),
    ("enable_prefix_caching", False, ["--no-enable-prefix-caching"]),
    ("cuda_graph_sizes", [1, 2, 4], ["--cuda-graph-sizes", "1", "2", "4"]),
    ("cuda_graph_sizes", (8,), ["--cuda-graph-sizes", "8"]),
    ("compilation_config", {"level": 0, "a": [1]}, ["--compilation-config", '{"a": [1], "level": 0}']),
])
def test_each_value_kind(key: str, value: object, flags: list[str]) -> None:
    assert render_value(key, value) == flags


def test_zero_and_empty_string_are_values_not_omissions() -> None:
    assert render_value("max_num_partial_prefills", 0) == ["--max-num-partial-prefills", "0"]
    assert render_value("served_model_name", "") == ["--served-model-name", ""]


def test_empty_list_is_refused_with_the_fix() -> None:
    with pytest.raises(EmuError, match=r"cuda_graph_sizes.*remove it"):
        render_value("cuda_graph_sizes", [])


def test_order_is_kept_and_user_flags_win() -> None:
    args = {"max_num_seqs": 64, "block_size": 16, "async_scheduling": True, "max_model_len": 4096}
    user = ["--max-num-seqs=8", "--no-async-scheduling", "--block_size", "32"]
    assert render_flags(args, skip_given=user) == ["--max-model-len", "4096"]
    assert render_flags(args)[:2] == ["--max-num-seqs", "64"]


@pytest.mark.parametrize(("flags", "given"), [
    (["--block-size", "16"], True), (["--block_size=16"], True), (["--no-block-size"], True),
    (["--block-sizes", "16"], False), (["block-size"], False), (["--max-num-seqs", "16"], False), ([], False),
])
def test_flag_given_spellings(flags: list[str], given: bool) -> None:
    assert flag_given(flags, "block_size") is given


def test_vllm_parses_what_we_render() -> None:
    """The real `vllm serve` parser reads the rendered flags back into the same values."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    args = {"max_num_seqs": 64, "enable_prefix_caching": False, "enable_chunked_prefill": True,
            "allowed_media_domains": ["a.org", "b.org"], "kv_cache_dtype": None, "gpu_memory_utilization": 0.5}
    parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
    ns = parser.parse_args(["--model", "m", *render_flags(args)])
    assert (ns.max_num_seqs, ns.enable_prefix_caching, ns.enable_chunked_prefill) == (64, False, True)
    assert ns.allowed_media_domains == ["a.org", "b.org"] and ns.gpu_memory_utilization == 0.5
