from __future__ import annotations

import pytest

from llm_emu.errors import SpecError
from search.spec import parse_search_spec
from tests.search.factories import BASE_SWEEP, sweep


def parse(**search):
    doc = sweep(**search)
    return parse_search_spec(doc["search"], base_engine_args=doc["engine_args"], top_level_slo=doc["slo"])


def test_valid_defaults():
    spec = parse()
    assert spec.sampler == "tpe" and spec.slo.attainment == 0.9 and spec.directions == ["maximize"]
    assert parse(objective="pareto").sampler == "nsgaii"


@pytest.mark.parametrize(
    ("search", "match"),
    [
        ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]; valid keys are \['objective'"),
        ({"objective": "fastest"}, "must be one of"),
        ({"rate": None}, "needs `rate`"),
        ({"n_trials": None}, "n_trials` and/or `timeout_s"),
        ({"n_trials": 0}, "n_trials"),
        ({"sampler": "cmaes"}, "search.sampler"),
        ({"parallelism": 0}, "parallelism"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 4}}}, "below low"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 64, "log": True, "step": 8}}}, "cannot be combined"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 64, "stepp": 8}}}, r"unknown key\(s\) \['stepp'\]"),
        ({"space": {"x": {"type": "categorical"}}}, "non-empty `choices`"),
        ({"space": {"x": {"type": "int", "low": 1, "high": 2, "when": "nope"}}}, "not in search.space"),
        ({"constraints": [{"rule": "max_num_seqs >= kv_blocks"}]}, "'kv_blocks', which is neither"),
        ({"constraints": [{"rule": "max_num_seqs >>= 3"}]}, "must read"),
        ({"constraints": [{"left": "max_num_seqs", "op": "=<", "right": 3}]}, "op"),
        ({"objective": "capacity"}, "needs search.capacity"),
        ({"objective": "capacity", "capacity": {"low": 8, "high": 2}}, "must exceed"),
        ({"slo": {"ttft_ms": 500, "attainment": 1.5}}, r"attainment \(1.5\)"),
        ({"slo": {"attainment": 0.9}}, "at least one of"),
        ({"sampler": "grid", "space": {"max_num_seqs": {"low": 1, "high": 1000}}}, "grid sampler needs finite"),
    ],
)
def test_errors_are_one_line_spec_errors(search, match):
    with pytest.raises(SpecError, match=match) as info:
        parse(**search)
    assert "\n" not in str(info.value)


def test_slo_needed_for_slo_throughput():
    doc = sweep()
    with pytest.raises(SpecError, match="needs an SLO"):
        parse_search_spec(doc["search"], base_engine_args={}, top_level_slo=None)


def test_conditional_and_rule_constraint():
    spec = parse(
        space={
            "enable_chunked_prefill": {"type": "bool"},
            "long_prefill_token_threshold": {"low": 0, "high": 2048, "step": 512, "when": "enable_chunked_prefill"},
            "max_num_batched_tokens": {"low": 1024, "high": 8192, "step": 1024},
            "block_size": [16, 32],
        },
        constraints=[{"rule": "max_num_batched_tokens >= max_model_len", "unless": "enable_chunked_prefill"}],
    )
    assert spec.space[1].when == (("enable_chunked_prefill", True),)
    assert spec.space[3].choices == (16, 32)
    c = spec.constraints[0]
    assert (c.left, c.op, c.right, c.unless) == (
        "max_num_batched_tokens",
        ">=",
        "max_model_len",
        (("enable_chunked_prefill", True),),
    )


def test_base_sweep_untouched():
    parse(n_trials=3)
    assert BASE_SWEEP["search"]["n_trials"] == 10
