"""The LatencyOracle contract, run over every registered oracle."""

from __future__ import annotations

import math

import pytest

from llm_emu.oracle import available_oracles, create_oracle
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.resolve import resolve_profile
from tests.factories import LLAMA_8B, make_pack, run_in_threads

pytestmark = pytest.mark.window  # runs on every vLLM release of the version window (scripts/version_window.sh)

QUERIES = [
    StepFeatures(num_decode_reqs=1, decode_context_tokens=100),
    StepFeatures(num_decode_reqs=64, decode_context_tokens=64 * 700),
    StepFeatures(num_prefill_tokens=2048, num_prefill_reqs=2),
    StepFeatures(num_prefill_tokens=512, num_prefill_reqs=1, num_decode_reqs=32, decode_context_tokens=32 * 900),
    StepFeatures(num_prefill_tokens=6000, num_prefill_reqs=3, num_decode_reqs=300, decode_context_tokens=600000),
]


def _pack(name: str):
    if name in ("aic", "calibrated"):
        pytest.importorskip("aiconfigurator_core", reason="aic oracles need pip install 'llm-emu[aic]'")
        if name == "calibrated":
            terms = "scale=1.1,step_ms=0.7,prefill_ms_per_ktok=2,decode_ctx_ms_per_ktok=0.02"
            return resolve_profile(f"aic-cal:h100_sxm,{terms}", LLAMA_8B)
        return resolve_profile("aic:h100_sxm", LLAMA_8B)
    if name == "formula":
        return resolve_profile("formula:", LLAMA_8B)
    return make_pack(oracle=name)


@pytest.fixture(params=available_oracles())
def oracle_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_units_are_seconds_finite_and_non_negative(oracle_name: str) -> None:
    oracle = create_oracle(_pack(oracle_name), seed=0)
    for q in QUERIES:
        for value in (oracle.sample(q), oracle.expected(q)):
            assert math.isfinite(value) and value >= 0.0
            assert value < 10.0, f"{oracle_name}: {value} s for one step is not a step latency in seconds"


def test_deterministic_under_a_seed(oracle_name: str) -> None:
    pack = _pack(oracle_name)
    a, b = create_oracle(pack, seed=7), create_oracle(pack, seed=7)
    assert [a.sample(q) for q in QUERIES * 5] == [b.sample(q) for q in QUERIES * 5]


def test_thread_safe(oracle_name: str) -> None:
    oracle = create_oracle(_pack(oracle_name), seed=0)
    values: list[float] = []

    def work() -> None:
        for q in QUERIES * 20:
            values.append(oracle.sample(q))

    errors = run_in_threads(work, 4)
    assert not errors
    assert len(values) == 4 * 20 * len(QUERIES) and all(v >= 0 for v in values)


def test_expected_grows_with_work(oracle_name: str) -> None:
    oracle = create_oracle(_pack(oracle_name), seed=0)
    small = StepFeatures(num_decode_reqs=8, decode_context_tokens=8 * 500)
    more_decode = StepFeatures(num_decode_reqs=128, decode_context_tokens=128 * 500)
    with_prefill = StepFeatures(num_prefill_tokens=1024, num_prefill_reqs=1, num_decode_reqs=8,
                                decode_context_tokens=8 * 500)
    assert oracle.expected(more_decode) >= oracle.expected(small)
    assert oracle.expected(with_prefill) > oracle.expected(small)
