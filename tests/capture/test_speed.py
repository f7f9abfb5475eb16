"""Device speed probes: each capture run's steps scaled to the device's typical speed (llm_emu.capture.speed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_emu.capture.cli import run_windows, write_pack
from llm_emu.capture.plan import capture_plan, speed_probe, with_speed_probes
from llm_emu.capture.recorder import STEPS_FILE, WORKER_FILE, step_record
from llm_emu.capture.speed import MIN_PROBE_STEPS, PROBE_SKIP, RunWindow, scale_to_typical_speed
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import load_pack

PROBE_US = 3000.0
"""A probe's decode step at the device's typical speed."""
BATCH6_US = 6000.0
"""A 6-request decode step at the device's typical speed."""


def _device(plan: list[tuple[str, bool, float]], start: float = 1000.0) -> tuple[pd.DataFrame, list[RunWindow]]:
    """Steps and windows of a capture: ``plan`` = (label, probe, device slowness) per run. A probe is a cold
    prefill, then decode steps of 1 request; any other run is 50 decode steps of 6 requests."""
    rows, windows, t = [], [], start
    for label, probe, slow in plan:
        t0 = t
        if probe:
            shapes = [StepFeatures(32, 1, 0)] + [StepFeatures(0, 0, 1, 33 + i) for i in range(40)]
            base = [20000.0] + [PROBE_US * (4.0 if i < PROBE_SKIP - 1 else 1.0) for i in range(40)]
        else:
            shapes = [StepFeatures(0, 0, 6, 1200 + 6 * i) for i in range(50)]
            base = [BATCH6_US] * 50
        for f, us in zip(shapes, base, strict=True):
            t += us * slow * 1e-6
            rows.append({**step_record(f, us * slow * 1e-6), "t": t})
        windows.append(RunWindow(label, t0, t + 1e-3, probe))
        t += 1.0  # the client's gap between runs
    return pd.DataFrame(rows), windows


def test_a_slow_episode_is_scaled_back_to_the_typical_speed() -> None:
    # the device runs 25 % slow during the second run (and the probes around it see it)
    steps, windows = _device([("p", True, 1.0), ("a", False, 1.0), ("p", True, 1.0), ("b", False, 1.25),
                              ("p", True, 1.25), ("c", False, 1.0), ("p", True, 1.0)])
    scaled, how = scale_to_typical_speed(steps, windows)
    assert how.measured and how.reference_ms == pytest.approx(PROBE_US * 1e-3)
    # run b: the mean of the probes around it (1.0 and 1.25) -> 1.125; runs a and c: 1.0
    assert how.factors[1] == pytest.approx(1.0) and how.factors[3] == pytest.approx(1.125)
    assert how.factors[5] == pytest.approx(1.125)  # the probe after b ran at 1.25, the one after c at 1.0
    b = scaled["num_decode_reqs"] == 6
    got = scaled.loc[b, "latency_us"].to_numpy()
    raw = steps.loc[b, "latency_us"].to_numpy()
    assert np.allclose(got[:50], BATCH6_US) and np.allclose(got[50:100], BATCH6_US * 1.25 / 1.125)
    assert np.allclose(raw[50:100], BATCH6_US * 1.25)  # the input is not modified
    assert how.steps_scaled == len(steps)
    assert "device speed probes: 4" in how.describe() and "scaled to that speed" in how.describe()
    # reading only: the same factors, the steps untouched
    kept, read = scale_to_typical_speed(steps, windows, apply=False)
    assert kept is steps and read.factors == how.factors and read.steps_scaled == 0
    assert "kept as measured" in read.describe()


def test_a_probe_ignores_its_first_cold_steps_and_needs_enough_steps() -> None:
    steps, windows = _device([("p", True, 1.0), ("a", False, 1.0), ("p", True, 1.0), ("b", False, 1.0),
                              ("p", True, 1.0)])
    _, how = scale_to_typical_speed(steps, windows)
    # the cold prefill and the 4x-slow first decode steps are left out: the probe reads the warm step time
    assert how.probe_ms[0] == pytest.approx(PROBE_US * 1e-3) and set(how.factors) == {1.0}
    # a probe with too few decode steps does not count, and with fewer than 3 valid probes nothing is scaled
    short = steps[~((steps["num_decode_reqs"] == 1) & (steps["t"] > windows[4].start)
                    & (steps["decode_context_tokens"] > 33 + MIN_PROBE_STEPS))]
    unscaled, how = scale_to_typical_speed(short, windows)
    assert not how.measured and how.probe_ms[4] is None and unscaled is short
    assert "fewer than 3" in how.describe()


def test_steps_outside_every_run_keep_their_latency() -> None:
    steps, windows = _device([("p", True, 2.0), ("a", False, 2.0), ("p", True, 1.0), ("p", True, 1.0)])
    extra = pd.DataFrame([{**step_record(StepFeatures(0, 0, 6, 1200), BATCH6_US * 1e-6), "t": 1.0}])
    scaled, how = scale_to_typical_speed(pd.concat([extra, steps], ignore_index=True), windows)
    assert scaled.loc[0, "latency_us"] == pytest.approx(BATCH6_US) and how.steps_scaled == len(steps)


def test_the_plan_brackets_every_run_with_a_probe() -> None:
    plan = capture_plan(2048, 128, 4096, quick=True)
    probed = with_speed_probes(plan)
    assert len(probed) == 2 * len(plan) + 1
    assert all(p.probe for p in probed[::2]) and not any(p.probe for p in probed[1::2])
    assert [p for p in probed if not p.probe] == plan
    wl = speed_probe().workload
    assert wl.max_concurrency == 1 and wl.num_prompts == 1 and wl.ignore_eos and wl.dataset == "random"
    assert with_speed_probes([]) == []


def test_write_pack_scales_each_run_once(tmp_path: Path) -> None:
    steps, windows = _device([("p", True, 1.0), ("a", False, 1.0), ("p", True, 1.0), ("b", False, 1.5),
                              ("p", True, 1.5), ("c", False, 1.0), ("p", True, 1.0)])
    raw = tmp_path / "raw"
    raw.mkdir()
    with open(raw / STEPS_FILE, "w") as fh:
        for rec in steps.to_dict("records"):
            fh.write(json.dumps(rec) + "\n")
    info = {"engine": {"block_size": 128, "async_scheduling": False, "max_num_batched_tokens": 2048,
                       "max_num_seqs": 128, "enable_chunked_prefill": True, "enable_prefix_caching": True,
                       "max_model_len": 4096, "dtype": "float32"},
            "device": {"name": "cpu (test)", "memory_bytes": 2**30, "kind": "cpu"}, "vllm_version": "0.32.0"}
    (raw / WORKER_FILE).write_text(json.dumps(info))
    rows = [{"label": w.label, "probe": w.probe, "start": w.start, "end": w.end} for w in windows]
    speed: dict[str, object] = {}
    write_pack(raw, tmp_path / "pack", "tiny-llama", {"model_type": "llama"}, "unit test", 0.0, run_windows(rows),
               speed, scale_to_probes=True)
    pack = load_pack(tmp_path / "pack")
    b6 = pack.steps[pack.steps["num_decode_reqs"] == 6]["latency_us"].to_numpy()
    # run b ran 1.5x slow, the probes around it read 1.0 and 1.5 -> / 1.25, once; run c ran at 1.0 and is read
    # as 1.25 too (the probe after b); run a stays (the first steps after each 1 s gap are the warm-up model's)
    assert set(np.round(b6).tolist()) == {BATCH6_US, BATCH6_US * 1.5 / 1.25, BATCH6_US / 1.25}
    assert "device speed probes: 4" in pack.meta.provenance.method
    assert speed["factors"] == [1.0, 1.0, 1.0, 1.25, 1.5, 1.25, 1.0] and speed["warning"] is not None
    # by default (and without windows) the probes are only read: the steps stay as measured
    for n, windows_arg in ((2, run_windows(rows)), (3, None)):
        write_pack(raw, tmp_path / f"pack{n}", "tiny-llama", {"model_type": "llama"}, "unit test", 0.0, windows_arg)
        b6 = load_pack(tmp_path / f"pack{n}").steps.query("num_decode_reqs == 6")["latency_us"].to_numpy()
        assert set(np.round(b6).tolist()) == {BATCH6_US, BATCH6_US * 1.5}
    assert "kept as measured" in load_pack(tmp_path / "pack2").meta.provenance.method


def test_an_unsteady_device_is_reported() -> None:
    steady, windows = _device([("p", True, 1.0), ("a", False, 1.0), ("p", True, 1.02), ("b", False, 1.0),
                               ("p", True, 0.99), ("c", False, 1.0), ("p", True, 1.0)])
    _, how = scale_to_typical_speed(steady, windows)
    assert how.spread is not None and how.spread < 0.05 and how.warning() is None
    unsteady, windows = _device([("p", True, 1.0), ("a", False, 1.0), ("p", True, 1.4), ("b", False, 1.0),
                                 ("p", True, 0.8), ("c", False, 1.0), ("p", True, 1.0)])
    _, how = scale_to_typical_speed(unsteady, windows)
    warning = how.warning()
    assert warning is not None and "2.40-4.20 ms" in warning and "\n" not in warning
    assert how.to_dict()["spread"] == how.spread and len(how.to_dict()["factors"]) == len(windows)  # type: ignore[arg-type]
