"""The calibration fit: recovers a known truth, is deterministic, never scores a source on its own fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_emu.reference.fit import (
    HOST_PARAM,
    HOST_STEP_PARAM,
    HOST_STEP_REQ_PARAM,
    IDENTITY,
    fit_terms,
    leave_one_source_out,
    residuals,
    source_weights,
    summarize,
)
from tests.reference.factories import TRUTH, RecordingEvaluator, make_row, synthetic_metrics, truth_rows


def test_fit_recovers_the_terms_that_made_the_data() -> None:
    rows = truth_rows()
    fit = fit_terms(rows, RecordingEvaluator(), IDENTITY, max_iter=30, tol=1e-12)
    assert fit.cost < 1e-8 < fit.start_cost
    for name in ("scale", "step_ms", "prefill_ms_per_ktok", HOST_PARAM, HOST_STEP_PARAM, HOST_STEP_REQ_PARAM):
        assert fit.params[name] == pytest.approx(TRUTH[name], rel=2e-2), name


def test_fit_is_deterministic() -> None:
    rows = truth_rows()
    a = fit_terms(rows, RecordingEvaluator())
    b = fit_terms(rows, RecordingEvaluator())
    assert a == b


def test_fit_respects_bounds_and_frozen_terms() -> None:
    rows = truth_rows()
    fit = fit_terms(rows, RecordingEvaluator(), IDENTITY, free=("step_ms",), max_iter=10)
    assert fit.params["scale"] == 1.0 and fit.params["prefill_ms_per_ktok"] == 0.0 and fit.params[HOST_PARAM] == 0
    assert fit.params[HOST_STEP_PARAM] == 0 and fit.params[HOST_STEP_REQ_PARAM] == 0
    assert 0.0 < fit.params["step_ms"] <= 10.0


def test_residuals_are_log_ratios() -> None:
    rows = truth_rows(2, 1)
    exact = {r.row_id: synthetic_metrics(r, TRUTH) for r in rows}
    assert abs(residuals(rows, exact)).max() < 1e-12
    off = {k: {m: v * 1.1 for m, v in res.items()} for k, res in exact.items()}
    r = residuals(rows, off)
    assert r.max() > 0.04  # log(1.1) times sqrt(weight) for ITL (weight 1)


def test_leave_one_source_out_never_trains_on_the_held_source() -> None:
    rows = truth_rows(6, 3)
    ev = RecordingEvaluator()
    full = fit_terms(rows, RecordingEvaluator(), IDENTITY, max_iter=20, tol=1e-12)
    held = leave_one_source_out(rows, ev, full, refit=True, max_iter=3)
    assert sorted(held.folds) == ["s0", "s1", "s2"]
    by_source = {r.row_id: r.source_id for r in rows}
    for source, terms in held.folds.items():
        scoring = [ids for t, ids in ev.calls if t == terms and {by_source[i] for i in ids} == {source}]
        assert scoring, f"fold {source} was never scored on its own rows"
    # training calls see two of the three sources, scoring calls one: none sees all three
    assert all(len({by_source[i] for i in ids}) in (1, 2) for _, ids in ev.calls)
    assert set(held.errors) == {r.row_id for r in rows}
    assert summarize(held.errors)["ITL"]["rows"] == 6


def test_one_step_folds_match_full_refits_on_a_smooth_problem() -> None:
    rows = truth_rows(9, 3)
    # publish off-truth values per source so that folds differ from the all-rows fit
    shifted = [type(r)(**{**r.__dict__, "published": {k: v * (1 + 0.03 * int(r.source_id[1:]))
                                                    for k, v in r.published.items()}}) for r in rows]
    ev = RecordingEvaluator()
    full = fit_terms(shifted, ev, IDENTITY, max_iter=30, tol=1e-12)
    quick = leave_one_source_out(shifted, ev, full)
    exact = leave_one_source_out(shifted, ev, full, refit=True, max_iter=30)
    for source in quick.folds:
        assert quick.folds[source] != full.params
    # parameters trade off; the reported held-out errors agree with full refits to ~1 pp (one step vs converged)
    for row_id, fams in exact.errors.items():
        for fam, err in fams.items():
            assert quick.errors[row_id][fam] == pytest.approx(err, abs=1.5), (row_id, fam)


def test_every_source_weighs_the_same_in_the_fit() -> None:
    rows = [make_row(f"a{i}", "big") for i in range(4)] + [make_row("b0", "small")]
    weights = source_weights(rows)
    assert sum(weights[r.row_id] for r in rows if r.source_id == "big") == pytest.approx(weights["b0"])
    assert sum(weights.values()) == pytest.approx(len(rows))
    # the same 10 % miss on every row: each source contributes the same squared residual in total
    off = {r.row_id: {"mean_itl_ms": 7.7} for r in rows}
    r = residuals(rows, off)
    assert float((r[:4] ** 2).sum()) == pytest.approx(float(r[4] ** 2))


def test_host_step_terms_reach_only_sync_scheduling_rows() -> None:
    sync, fast = make_row("s", vllm_version="0.11.0"), make_row("f", vllm_version="0.15.1")
    assert not sync.async_scheduling and fast.async_scheduling
    base = {**IDENTITY, HOST_STEP_PARAM: 1.0, HOST_STEP_REQ_PARAM: 0.1}
    more = {**base, HOST_STEP_PARAM: 2.0, HOST_STEP_REQ_PARAM: 0.2}
    ev = RecordingEvaluator()
    assert ev(more, [fast])["f"] == ev(base, [fast])["f"]
    assert ev(more, [sync])["s"]["mean_itl_ms"] > ev(base, [sync])["s"]["mean_itl_ms"]


def test_the_replay_evaluator_replays_only_rows_a_change_reaches(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    import llm_emu.reference.fitcli as fitcli

    replayed: list[str] = []

    def fake_replay(plans, clock, work):  # type: ignore[no-untyped-def]
        for plan in plans:
            replayed.append(plan.row.row_id)
            yield plan, {"mean_itl_ms": 7.0 + plan.host_ms[1]}

    monkeypatch.setattr(fitcli, "replay", fake_replay)
    rows = [make_row("sync", vllm_version="0.11.0"), make_row("async", vllm_version="0.15.1")]
    evaluate = fitcli.replay_evaluator("virtual", tmp_path, max_prompts=None, jobs=2)
    first = evaluate(dict(IDENTITY), rows)
    assert sorted(replayed) == ["async", "sync"] and first["sync"]["mean_itl_ms"] == 7.0
    replayed.clear()
    # a step host term reaches the sync-scheduling row only: the async row comes from disk
    second = evaluate({**IDENTITY, HOST_STEP_PARAM: 1.5}, rows)
    assert replayed == ["sync"] and second["sync"]["mean_itl_ms"] == 8.5 and second["async"] == first["async"]
    replayed.clear()
    assert evaluate(dict(IDENTITY), rows) == first and replayed == []


def test_fit_on_a_subset_of_families_ignores_the_others() -> None:
    rows = truth_rows(6, 2)
    # every row's TTFT is published 3x too high: a fit on all families is pulled off the truth by it,
    # a fit on the decode families only recovers the truth's decode terms and scores TTFT as it comes out
    off = [type(r)(**{**r.__dict__, "published": {k: v * (3.0 if "ttft" in k else 1.0)
                                                 for k, v in r.published.items()}}) for r in rows]
    free = ("scale", "step_ms")
    start = {**IDENTITY, **{k: TRUTH[k] for k in TRUTH if k not in free}}
    decode = fit_terms(off, RecordingEvaluator(), start, free=free, max_iter=30, tol=1e-12,
                       families=("ITL", "TPOT", "E2E"))
    everything = fit_terms(off, RecordingEvaluator(), start, free=free, max_iter=30, tol=1e-12)
    assert decode.families == ("ITL", "TPOT", "E2E") and everything.families is None
    assert decode.params["scale"] == pytest.approx(TRUTH["scale"], rel=1e-3)
    assert everything.params["scale"] != pytest.approx(TRUTH["scale"], rel=1e-2)
    assert len(residuals(off, {r.row_id: synthetic_metrics(r, TRUTH) for r in off}, ("ITL",))) == len(off)
    with pytest.raises(ValueError, match="TTTF"):
        fit_terms(off, RecordingEvaluator(), start, free=free, families=("TTTF",))


def test_a_joint_fit_file_scores_its_own_gpu_rows_only() -> None:
    from llm_emu.reference.fitcli import _own_rows

    held = {"errors": {"h100-a": {"ITL": 10.0}, "h200-a": {"TPOT": -4.0}},
            "in_sample_errors": {"h100-a": {"ITL": 2.0}, "h200-a": {"TPOT": 1.0}},
            "uncalibrated_errors": {"h100-a": {"ITL": -7.0}, "h200-a": {"TPOT": -20.0}},
            "summary": {"ITL": {"mean_abs": 10.0, "max_abs": 10.0, "rows": 1}}}
    own = _own_rows(held, {"h200-a"})
    assert own["summary"] == {"TPOT": {"mean_abs": 4.0, "max_abs": 4.0, "rows": 1}}
    assert own["uncalibrated"] == {"TPOT": {"mean_abs": 20.0, "max_abs": 20.0, "rows": 1}}
    assert own["in_sample"] == {"TPOT": {"mean_abs": 1.0, "max_abs": 1.0, "rows": 1}}
    assert own["all_gpus_summary"] == held["summary"] and "h100-a" not in own["uncalibrated_errors"]


@pytest.mark.parametrize("flag", [["--fit-on", "ITL,TTTF"], ["--free", "scale,bogus"]])
def test_bad_fit_choices_fail_before_any_replay(flag: list[str], tmp_path: Path) -> None:
    import argparse

    from llm_emu.errors import EmuError
    from llm_emu.reference import fitcli

    parser = argparse.ArgumentParser()
    fitcli.add_cli_args(parser)
    args = parser.parse_args(["--gpu", "h200_sxm", "--out", str(tmp_path / "out"), *flag])
    with pytest.raises(EmuError, match=flag[1].split(",")[1]):
        fitcli.main(args)
    assert not (tmp_path / "out").exists()
