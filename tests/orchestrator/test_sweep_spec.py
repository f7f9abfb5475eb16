"""Spec loading: types, unknown keys, file:line in every message."""

from __future__ import annotations

import math

import pytest
from sweep_factories import make_spec, write_spec

from llm_emu.errors import SpecError
from orchestrator.spec import load_spec, loads_spec

GOOD = """\
name: s
model: llama-3.1-8b
profile: aic:h100_sxm
grid:
  max_num_seqs: [64, 128]
workload:
  request_rates: [1, 4, inf]
"""


def test_valid_spec_defaults_and_types(tmp_path):
    spec = load_spec(write_spec(tmp_path, GOOD))
    assert spec.workload.request_rates == (1.0, 4.0, math.inf)
    assert spec.resources.cpus_per_trial == 2.0
    assert spec.kind == "emulated" and spec.slo is None and spec.search is None
    assert str(spec.output_dir()) == "runs/s"


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD + "workload_typo: 1\n", "spec.yaml:8: workload_typo: unknown key 'workload_typo'; valid keys: name"),
    (GOOD.replace("request_rates: [1, 4, inf]", "request_rates: [1, fast]"),
     "spec.yaml:7: workload.request_rates[1]: expected float, got 'fast'"),
    (GOOD + "retries: yes\n", "spec.yaml:8: retries: expected int, got True"),
    (GOOD + "slo: {ttft_ms: 100, p99: 3}\n", "spec.yaml:8: slo.p99: unknown key 'p99'; valid keys: ttft_ms"),
    (GOOD + "slo: {attainment: 0.9}\n", "slo: give at least one of ttft_ms"),
    (GOOD.replace("[64, 128]", "[]"), "spec.yaml:5: grid.max_num_seqs: expected a non-empty list"),
    (GOOD.replace("profile: aic:h100_sxm\n", ""), "profile: emulated sweeps need a profile"),
    (GOOD + "engine_args: {port: 1}\n", "'port' is set by the orchestrator"),
    (GOOD + "engine_args: {max_num_seqs: 8}\n", "'max_num_seqs' is also in engine_args"),
    (GOOD + "workload: {}\n", "spec.yaml:8: duplicate key 'workload'"),
    (GOOD + "kind: gpu\n", "kind: expected one of 'emulated', 'real'; got 'gpu'"),
    (GOOD + "constraints: [{rule: 'max_num_seqs >> 3'}]\n", "constraints[0].rule: cannot parse rule"),
    (GOOD + "constraints: [{rule: 'max_num_seqs >= max_num_batched_tokens'}]\n",
     "spec.yaml:8: constraints[0].rule: refers to 'max_num_batched_tokens', which no config sets"),
    (GOOD + "constraints: [{rule: 'max_num_seqs >= 8', unless: enable_chunked_prefill}]\n",
     "constraints[0].unless: refers to 'enable_chunked_prefill'"),
    (GOOD + "clock: fast\n", "spec.yaml:8: clock: expected one of 'wall', 'virtual'; got 'fast'"),
    (GOOD + "kind: real\nclock: virtual\n", "spec.yaml:9: clock: virtual time emulates a profile"),
    (GOOD + "search: {objective: pareto}\n", "spec.yaml:8: search: missing required key 'space'"),
    ("name: [1\n", "spec.yaml:2: invalid YAML"),
    ("model: m\n", "missing required key 'name'"),
])
def test_errors_quote_file_line_and_fix(tmp_path, text, expected):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(tmp_path, text))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")


def test_dashes_normalized_and_constraint_conditions(tmp_path):
    text = GOOD + ("engine_args: {max-model-len: 2048}\n"
                   "constraints: [{rule: 'max_num_seqs <= max_model_len', when: max_num_seqs,\n"
                   "               unless: {max_num_seqs: 64}}]\n")
    spec = loads_spec(text)
    assert spec.engine_args == {"max_model_len": 2048}
    (c,) = spec.constraints
    assert c.when == {"max_num_seqs": True} and c.unless == {"max_num_seqs": 64}


def test_search_section_is_typed(tmp_path):
    text = GOOD.replace("grid:\n  max_num_seqs: [64, 128]\n", "") + (
        "slo: {ttft_ms: 500}\nsearch:\n  objective: slo_throughput\n  rate: 4\n  n_trials: 5\n"
        "  space: {max_num_seqs: {low: 8, high: 64}, block_size: [16, 32]}\n")
    spec = loads_spec(text)
    assert spec.search is not None and spec.search.n_trials == 5 and spec.search.space["block_size"].choices == (16, 32)
    assert spec.grid == {} and spec.clock == "wall" and spec.host_model == "default"


def test_goodput_keys_match_vllm(tmp_path):
    spec = make_spec(tmp_path)
    assert spec.slo is not None and spec.slo.goodput() == {"ttft": 300.0, "tpot": 50.0}


def test_where_points_at_key(tmp_path):
    spec = load_spec(write_spec(tmp_path, GOOD))
    assert spec.where("grid", "max_num_seqs").endswith("spec.yaml:5")


def test_engine_arg_names_checked_against_vllm(tmp_path):
    pytest.importorskip("vllm")
    from orchestrator.checks import check_engine_args

    spec = load_spec(write_spec(tmp_path, GOOD.replace("max_num_seqs:", "max_num_batched_token:")))
    with pytest.raises(SpecError, match=r"spec\.yaml:5: grid\.max_num_batched_token: not a vLLM engine arg; "
                                        r"did you mean max_num_batched_tokens"):
        check_engine_args(spec)
    check_engine_args(make_spec(tmp_path))  # valid names pass
