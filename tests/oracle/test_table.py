"""The table oracle reproduces measured distributions and extrapolates with its fitted model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm_emu.errors import OracleError
from llm_emu.oracle.table import TableOracle
from llm_emu.profile.features import STEP_COLUMNS, StepFeatures
from tests.factories import linear_latency_us, make_pack, synthetic_steps


def test_mean_matches_ground_truth_inside_the_profiled_range() -> None:
    oracle = TableOracle(make_pack(), seed=0)
    for p, d, kv in [(0, 32, 32 * 800), (512, 0, 0), (1024, 100, 100 * 1000)]:
        f = StepFeatures(num_prefill_tokens=p, num_prefill_reqs=int(p > 0), num_decode_reqs=d,
                         decode_context_tokens=kv)
        truth = linear_latency_us(np.array(p), np.array(d), np.array(kv)) + 200.0  # + mean of the gamma noise
        draws = np.array([oracle.sample(f) for _ in range(2000)]) * 1e6
        assert abs(draws.mean() - truth) / truth < 0.05


def test_tail_is_kept_not_averaged_away() -> None:
    """Raw samples are drawn: at a single repeated point the oracle's p99 matches the data's p99."""
    rng = np.random.default_rng(1)
    n = 3000
    lat = 10000.0 + rng.lognormal(mean=5.0, sigma=1.0, size=n)  # heavy right tail
    steps = pd.DataFrame({c: np.zeros(n, dtype=int) for c in STEP_COLUMNS[:-1]})
    steps["num_decode_reqs"] = 16
    steps["decode_context_tokens"] = 16 * 500
    steps["latency_us"] = lat
    oracle = TableOracle(make_pack(steps=steps[list(STEP_COLUMNS)]), seed=0, k=n)
    f = StepFeatures(num_decode_reqs=16, decode_context_tokens=16 * 500)
    draws = np.array([oracle.sample(f) for _ in range(20000)]) * 1e6
    assert abs(np.percentile(draws, 99) - np.percentile(lat, 99)) / np.percentile(lat, 99) < 0.05


def test_extrapolates_beyond_the_table_instead_of_clamping() -> None:
    oracle = TableOracle(make_pack(steps=synthetic_steps(noise_us=1.0)), seed=0)
    far = StepFeatures(num_prefill_tokens=16384, num_prefill_reqs=1)
    truth = float(linear_latency_us(np.array(16384), np.array(0), np.array(0)))
    edge = float(linear_latency_us(np.array(4096), np.array(0), np.array(0)))
    got = oracle.expected(far) * 1e6
    assert got > 1.5 * edge, "clamped to the edge of the profiled range"
    assert abs(got - truth) / truth < 0.15


def test_context_length_matters() -> None:
    oracle = TableOracle(make_pack(steps=synthetic_steps(noise_us=1.0)), seed=0)
    short = StepFeatures(num_decode_reqs=200, decode_context_tokens=200 * 100)
    long = StepFeatures(num_decode_reqs=200, decode_context_tokens=200 * 1900)
    truth = 0.002 * (200 * 1900 - 200 * 100) * 1e-6  # the ground truth's context term: 720 us
    got = oracle.expected(long) - oracle.expected(short)
    assert abs(got - truth) / truth < 0.25


def test_too_small_table_is_a_clear_error() -> None:
    with pytest.raises(OracleError, match="needs a measured steps table"):
        TableOracle(make_pack(steps=synthetic_steps(n=3)))


def test_a_small_prefill_is_not_drawn_from_decode_steps() -> None:
    """A step with prompt tokens costs a fixed extra (new request, prefill path) that decode steps lack; its
    neighbours must be steps with prompt tokens even where 1-request decode steps are closer in feature space
    (the fixed extra is per step, so the linear model's per-request term cannot transport it)."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(2000):  # many small decode steps: 2 ms + 0.1 ms per request
        d = int(rng.integers(1, 8))
        rows.append((0, 0, d, d * 100, 0, 2000.0 + 100.0 * d))
    for p in (64, 128, 256, 512, 1024, 2048):  # pure prefills: 6 ms + 0.05 ms per token, 1 or 8 prompts
        rows += [(p, 1, 0, 0, 0, 6000.0 + 50.0 * p)] * 6 + [(p, 8, 0, 0, 0, 6000.0 + 50.0 * p)] * 6
    steps = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    oracle = TableOracle(make_pack(steps=steps), seed=0)
    got = oracle.expected(StepFeatures(num_prefill_tokens=16, num_prefill_reqs=1)) * 1e6
    assert abs(got - (6000.0 + 50.0 * 16)) / 6800.0 < 0.15, got
    decode = oracle.expected(StepFeatures(num_decode_reqs=1, decode_context_tokens=100)) * 1e6
    assert abs(decode - 2100.0) / 2100.0 < 0.05, decode
