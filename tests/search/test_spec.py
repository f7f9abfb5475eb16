"""The search section: typed like the rest of the spec, every error one line with file:line."""

from __future__ import annotations

import pytest

from llm_emu.errors import SpecError
from tests.search.factories import BASE_SWEEP, load, sweep


def parse(**search):
    spec = load(sweep(**search))
    assert spec.search is not None
    return spec.search


def test_valid_defaults():
    spec = parse()
    assert spec.sampler_name == "tpe" and spec.directions == ["maximize"] and spec.verify_top_k == 0
    assert parse(objective="pareto").sampler_name == "nsgaii"
    assert load(sweep()).slo.attainment == 0.9  # the one SLO: the spec's top-level slo


@pytest.mark.parametrize(
    ("search", "match"),
    [
        ({"bogus": 1}, r"spec.yaml:\d+: search.bogus: unknown key 'bogus'; valid keys: objective, space"),
        ({"objective": "fastest"}, r"search.objective: expected one of 'slo_throughput'"),
        ({"rate": None}, r"search.objective: slo_throughput needs `rate`"),
        ({"n_trials": None}, r"search.n_trials: give `n_trials` and/or `timeout_s`"),
        ({"n_trials": 0}, r"search.n_trials: must be >= 1"),
        ({"n_trials": "ten"}, r"search.n_trials: expected int"),
        ({"sampler": "cmaes"}, r"search.sampler: unknown sampler .cmaes.; valid samplers: tpe, gp"),
        ({"parallelism": 0}, r"search.parallelism: must be >= 1"),
        ({"verify_top_k": -1}, r"search.verify_top_k: must be >= 0"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 4}}}, r"search.space.max_num_seqs: high \(4\) is below"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 64, "log": True, "step": 8}}}, "cannot be combined"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 64, "stepp": 8}}},
         r"search.space.max_num_seqs.stepp: unknown key 'stepp'"),
        ({"space": {"max_num_seqs": {"low": 8, "high": "lots"}}}, r"search.space.max_num_seqs.high: expected"),
        ({"space": {"x": {"type": "categorical"}}}, "non-empty `choices`"),
        ({"space": {"x": {"type": "int", "low": 1, "high": 2, "when": "nope"}}}, r"search.space.x.when: refers to"),
        ({"space": {"max_model_len": [1024]}}, r"search.space.max_model_len: 'max_model_len' is also in engine_arg"),
        ({"space": {"port": [1]}}, r"search.space.port: 'port' is set by the orchestrator"),
        ({"constraints": [{"rule": "max_num_seqs >= 3"}]}, r"search.constraints: unknown key 'constraints'"),
        ({"slo": {"ttft_ms": 500}}, r"search.slo: unknown key 'slo'"),
        ({"objective": "capacity"}, r"search.objective: capacity needs search.capacity"),
        ({"objective": "capacity", "capacity": {"low": 8, "high": 2}}, r"search.capacity: needs 0 < low < high"),
        ({"sampler": "grid", "space": {"max_num_seqs": {"low": 1, "high": 1000}}}, "grid sampler needs finite"),
    ],
)
def test_errors_are_one_line_with_file_line(search, match):
    with pytest.raises(SpecError, match=match) as info:
        parse(**search)
    assert "\n" not in str(info.value) and str(info.value).startswith("spec.yaml:")


def test_slo_needed_for_slo_throughput():
    doc = sweep()
    del doc["slo"]
    with pytest.raises(SpecError, match=r"spec.yaml:\d+: search.objective: slo_throughput needs an SLO"):
        load(doc)


def test_grid_and_search_are_exclusive():
    with pytest.raises(SpecError, match=r"search: a spec has one proposal source"):
        load({**sweep(), "grid": {"max_num_seqs": [8]}})


def test_conditional_param_and_list_shorthand():
    spec = parse(space={
        "enable_chunked_prefill": {"type": "bool"},
        "long_prefill_token_threshold": {"low": 0, "high": 2048, "step": 512, "when": "enable_chunked_prefill"},
        "block_size": [16, 32],
    })
    assert spec.space["long_prefill_token_threshold"].conditions == {"enable_chunked_prefill": True}
    assert spec.space["block_size"].kind == "categorical" and spec.space["block_size"].choices == (16, 32)
    assert spec.space["long_prefill_token_threshold"].kind == "int"


def test_base_sweep_untouched():
    parse(n_trials=3)
    assert BASE_SWEEP["search"]["n_trials"] == 10
