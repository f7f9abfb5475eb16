"""Search logic against synthetic evaluators with known response surfaces."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.objectives.capacity import capacity_of, next_rates
from search.report import verify_table, vllm_serve_command
from search.runner import run_search, run_study
from search.spec import CapacitySpec
from search.storage import counted_trials
from tests.search.factories import create_task
from tests.search.synthetic import SmoothEvaluator, SyntheticEvaluator, capacity, smooth_metrics

optuna.logging.set_verbosity(optuna.logging.WARNING)
QUIET = {"log": lambda _msg: None}


def test_tpe_matches_or_beats_small_grid(tmp_path):
    """Budget: 40 TPE trials vs a 4x4 grid over the same space (grid best feasible = (160, 6144), 12.18)."""
    grid = [(s, m) for s in (32, 96, 160, 224) for m in (2048, 4096, 6144, 8192)]
    feasible = [
        smooth_metrics({"max_num_seqs": s, "max_num_batched_tokens": m}, 6) for s, m in grid if s <= 192 and m <= 6144
    ]
    grid_best = max(m["request_goodput"] for m in feasible)
    result = run_study(create_task(tmp_path, n_trials=40, parallelism=2, seed=0), SmoothEvaluator(), **QUIET)
    best = result.best[0]
    assert best.value >= grid_best
    assert all(c <= 0 for c in best.user_attrs["constraints"])
    # TPE may converge and keep proposing tried configs: the controller then stops early, never overshoots.
    assert len(counted_trials(result.study)) <= 40


def test_grid_sampler_stops_when_exhausted(tmp_path):
    space = {
        "max_num_seqs": {"type": "categorical", "choices": [64, 128]},
        "max_num_batched_tokens": {"low": 2048, "high": 4096, "step": 2048},
    }
    result = run_study(
        create_task(tmp_path, sampler="grid", space=space, n_trials=50, baseline=False), SyntheticEvaluator(), **QUIET
    )
    keys = [t.user_attrs["config_key"] for t in counted_trials(result.study)]
    assert len(keys) == 4 == len(set(keys))


def test_baseline_enqueued_first_and_reported(tmp_path):
    ev = SyntheticEvaluator()
    result = run_search(create_task(tmp_path, n_trials=4), evaluator=ev, **QUIET)
    assert ev.calls[0].overrides == {} and dict(ev.calls[0].engine_args) == {"max_model_len": 4096}
    assert result.baseline is not None and result.baseline.number == 0
    md = (tmp_path / "search.md").read_text()
    assert "vs baseline" in md and "vllm serve llama-3.1-8b" in md and "optuna-dashboard sqlite:///" in md
    assert (tmp_path / "search_results.parquet").exists() and (tmp_path / "search_history.png").exists()


def test_capacity_bisection_unit():
    cap, true_capacity = CapacitySpec(low=1, high=64, tolerance=0.25), 13.37
    measured: dict[float, float] = {}
    while rates := next_rates(measured, 0.9, cap):
        for r in rates:
            assert r not in measured  # reuse: never the same rate twice
            measured[r] = 1.0 if r <= true_capacity else 0.5
    found = capacity_of(measured, 0.9, cap)
    assert true_capacity - 0.25 <= found <= true_capacity
    assert len(measured) <= 2 + 8  # two bounds + log2(63 / 0.25) bisections
    assert capacity_of({1.0: 0.1}, 0.9, cap) == 0.0 and next_rates({1.0: 0.1}, 0.9, cap) == ()
    assert next_rates({1.0: 1.0, 64.0: 1.0}, 0.9, cap) == ()


def test_capacity_search_finds_known_capacity(tmp_path):
    ev = SyntheticEvaluator()
    space = {"max_num_seqs": {"type": "categorical", "choices": [64, 160]}}
    task = create_task(
        tmp_path,
        objective="capacity",
        space=space,
        sampler="grid",
        baseline=False,
        n_trials=2,
        parallelism=2,
        capacity={"low": 1, "high": 40, "tolerance": 0.1},
    )
    result = run_study(task, ev, **QUIET)
    for t in counted_trials(result.study):
        true = capacity(t.user_attrs["engine_args"])
        assert true - 0.1 <= t.value <= true
        rates = [r.rates for r in ev.calls if r.number == t.number]
        flat = [x for rs in rates for x in rs]
        assert len(flat) == len(set(flat)) == t.user_attrs["rates_measured"]
    assert result.best[0].user_attrs["engine_args"]["max_num_seqs"] == 160


def test_pareto_front_is_non_dominated(tmp_path):
    space = {
        "max_num_seqs": {"low": 8, "high": 256, "step": 8},
        "max_num_batched_tokens": {"low": 1024, "high": 8192, "step": 1024},
    }
    result = run_study(
        create_task(tmp_path, objective="pareto", space=space, n_trials=24, parallelism=4, rate=100),
        SmoothEvaluator(),
        **QUIET,
    )
    front, study = result.best, result.study
    assert len(front) >= 2
    done = [
        t
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if all(c <= 0 for c in t.user_attrs.get("constraints", ()))
    ]
    for f in front:
        for o in done:
            assert not (o.values[0] >= f.values[0] and o.values[1] <= f.values[1] and o.values != f.values)
    assert {t.number for t in front} == {t.number for t in study.best_trials}


def test_failed_evaluation_is_final_fail_with_error(tmp_path):
    space = {"max_num_seqs": {"type": "categorical", "choices": [64, 128, 256]}}
    result = run_study(
        create_task(tmp_path, space=space, sampler="grid", n_trials=3, baseline=False),
        SyntheticEvaluator(fail_if={"max_num_seqs": 128}),
        **QUIET,
    )
    failed = result.study.get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs["error"] for t in failed] == ["server exited with code 1"]
    assert len(counted_trials(result.study)) == 3


def test_conditional_param_only_suggested_when_its_condition_holds(tmp_path):
    space = {
        "enable_chunked_prefill": {"type": "bool"},
        "long_prefill_token_threshold": {"type": "categorical", "choices": [0, 512], "when": "enable_chunked_prefill"},
        "max_num_batched_tokens": {"type": "categorical", "choices": [2048, 8192]},
    }
    ev = SyntheticEvaluator()
    run_study(create_task(tmp_path, space=space, sampler="random", n_trials=6, max_duplicate_asks=60,
                          baseline=False), ev, **QUIET)
    for r in ev.calls:
        cfg = dict(r.engine_args)
        assert ("long_prefill_token_threshold" in cfg) == cfg["enable_chunked_prefill"]


def test_pruned_outcome_is_told_pruned_with_reason(tmp_path):
    space = {"max_num_seqs": {"type": "categorical", "choices": [64, 128]}}

    class Pruning(SyntheticEvaluator):
        def _one(self, r):
            if r.engine_args["max_num_seqs"] == 128:
                from search.evaluator import TrialOutcome

                return TrialOutcome({}, status="pruned", error="vLLM would refuse it")
            return super()._one(r)

    result = run_study(create_task(tmp_path, space=space, sampler="grid", n_trials=2, baseline=False), Pruning(),
                       **QUIET)
    (pruned,) = result.study.get_trials(states=(TrialState.PRUNED,))
    assert pruned.params == {"max_num_seqs": 128} and pruned.user_attrs["infeasible"] == ["vLLM would refuse it"]


def test_verify_top_k_reruns_the_best_in_wall_clock(tmp_path):
    """A virtual-time search re-checks its best configs with clock="wall"; the table shows both numbers."""
    from dataclasses import replace

    space = {"max_num_seqs": {"type": "categorical", "choices": [64, 128, 160]}}
    task = replace(create_task(tmp_path, space=space, sampler="grid", n_trials=3, baseline=False, verify_top_k=2),
                   clock="virtual")
    ev = SyntheticEvaluator()
    result = run_study(task, ev, **QUIET)
    walls = [r for r in ev.calls if r.clock == "wall"]
    ranked = sorted(counted_trials(result.study), key=lambda t: -t.value)[:2]
    assert [r.number for r in walls] == [t.number for t in ranked] and all(r.rates == (6.0,) for r in walls)
    assert sorted(result.verified) == sorted(t.number for t in ranked)
    table = verify_table(result)
    assert "request_goodput virtual | request_goodput wall" in table and table.count("\n") == 2 + 2
    same_wall = run_study(replace(task, clock="wall"), SyntheticEvaluator(), **QUIET)
    assert same_wall.verified == {}  # a wall-clock search has nothing to re-check


def test_vllm_serve_command():
    cmd = vllm_serve_command(
        "meta-llama/Llama-3.1-8B",
        {"max_num_seqs": 128, "enable_chunked_prefill": False, "enable_prefix_caching": True, "x": None},
    )
    assert cmd == (
        "vllm serve meta-llama/Llama-3.1-8B --no-enable-chunked-prefill --enable-prefix-caching --max-num-seqs 128"
    )


@pytest.mark.parametrize("objective", ["slo_throughput", "capacity", "pareto"])
def test_resume_does_not_rerun(tmp_path, objective):
    extra = {"capacity": {"low": 1, "high": 20, "tolerance": 1}} if objective == "capacity" else {}
    ev = SyntheticEvaluator()
    run_study(create_task(tmp_path, objective=objective, n_trials=5, **extra), ev, **QUIET)
    n_calls = len(ev.calls)
    result = run_study(create_task(tmp_path, objective=objective, n_trials=5, **extra), ev, **QUIET)
    assert len(ev.calls) == n_calls and len(counted_trials(result.study)) == 5
