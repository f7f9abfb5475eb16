"""Device warm-up after idle: finding warm-up runs in a capture, fitting their extra time, applying it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_emu.capture.cli import write_pack
from llm_emu.capture.recorder import STEPS_FILE, WORKER_FILE
from llm_emu.engine.clock import DeviceTimeline, VirtualClock
from llm_emu.profile.pack import load_pack
from llm_emu.profile.warmup import IDLE_EDGES_S, POSITIONS, Warmup, WarmupState, fit_warmup, warmup_positions

# Ground truth of the synthetic device: extra microseconds of a warm-up run by idle bin (rows) and position.
TRUE_EXTRA_US = [[500.0, 300.0, 0.0, 0.0], [2000.0, 800.0, 200.0, 0.0], [6000.0, 1500.0, 400.0, 100.0],
                 [9000.0, 2000.0, 500.0, 100.0]]


def _base_us(p: int, d: int) -> float:
    return 3000.0 + 15.0 * p + 400.0 * d


def test_positions_follow_idle_gaps() -> None:
    # (end, latency): starts 0.99, 1.001, 1.012 (1 ms host gaps), 2.0 (0.978 s idle), 2.011; then 1.001 s of idle
    # split by a step that starts 40 ms after the previous one (not idle enough) and one 60 ms after (a new run)
    end = np.array([1.00, 1.011, 1.022, 2.01, 2.02, 2.07, 2.14])
    lat = np.array([0.01, 0.01, 0.01, 0.01, 0.009, 0.01, 0.01])
    idle, pos = warmup_positions(end, lat)
    assert list(pos) == [0, 1, 2, 0, 1, 2, 0]
    assert math.isinf(idle[0]) and math.isinf(idle[2])  # the capture's first run: never a sample
    assert idle[3] == idle[5] == pytest.approx(0.978) and idle[6] == pytest.approx(0.06)


def _synthetic_capture(raw: Path, seed: int = 0) -> None:
    """A capture with busy stretches (warm) and requests after idle gaps spread over the bins (cold)."""
    rng = np.random.default_rng(seed)
    rows, t = [], 0.0

    def step(p: int, d: int, extra_us: float = 0.0) -> None:
        nonlocal t
        lat = (_base_us(p, d) + extra_us + rng.normal(0, 30)) * 1e-6
        t += lat
        rows.append({"num_prefill_tokens": p, "num_prefill_reqs": int(p > 0), "num_decode_reqs": d,
                     "decode_context_tokens": d * 100, "prefill_context_tokens": 0,
                     "latency_us": round(lat * 1e6, 3), "t": round(t, 6), "mode": "sync"})
        t += 0.0004  # host gap between back-to-back steps

    for _ in range(30):  # busy: prefills of both sizes and decode batches, back to back
        for p in (64, 384):
            step(p, 0)
        for d in range(1, 9):
            for _ in range(6):
                step(0, d)
    for b, lo in enumerate(IDLE_EDGES_S):
        hi = IDLE_EDGES_S[b + 1] if b + 1 < len(IDLE_EDGES_S) else 3.0
        for _ in range(8):
            t += rng.uniform(lo, hi)
            step(int(rng.choice([64, 384])), 0, TRUE_EXTRA_US[b][0])
            for k in range(1, POSITIONS + 2):
                step(0, 1, TRUE_EXTRA_US[b][k] if k < POSITIONS else 0.0)
            for _ in range(10):  # the rest of the request: warm
                step(0, 1)
    raw.mkdir(parents=True)
    (raw / STEPS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (raw / WORKER_FILE).write_text(json.dumps({
        "engine": {"block_size": 16, "max_num_batched_tokens": 2048, "max_num_seqs": 128, "num_gpu_blocks": 1000,
                   "max_model_len": 4096},
        "device": {"name": "cpu (test)", "memory_bytes": 16 * 2**30, "kind": "cpu"}, "vllm_version": "0.32.0"}))


def test_capture_fits_the_extra_time_of_steps_after_idle(tmp_path: Path) -> None:
    _synthetic_capture(tmp_path / "raw")
    pack = write_pack(tmp_path / "raw", tmp_path / "pack", "tiny-llama", {"model_type": "llama"}, "unit test")
    warmup = Warmup.from_dict(load_pack(tmp_path / "pack").meta.warmup)
    assert warmup.enabled
    got = np.array(warmup.extra_us)
    assert got == pytest.approx(np.array(TRUE_EXTRA_US), abs=120.0)  # microseconds, noise 30 us per step
    # warm-up steps are kept out of the step table: what is left is the busy device
    per_request = 1 + (POSITIONS + 1) + 10  # prefill, decodes with and past the warm-up positions, the rest
    assert len(pack.steps) == 30 * (2 + 8 * 6) - POSITIONS + len(IDLE_EDGES_S) * 8 * (per_request - POSITIONS)
    assert "warm-up model" in pack.meta.provenance.method
    # the extra is additive in the right unit: seconds out, from microseconds in
    assert warmup.extra_s(1.0, 0) == pytest.approx(TRUE_EXTRA_US[2][0] * 1e-6, abs=120e-6)
    assert warmup.extra_s(0.01, 0) == 0.0 and warmup.extra_s(1.0, POSITIONS) == 0.0


def test_no_idle_no_model(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _synthetic_capture(raw)
    steps = [json.loads(x) for x in (raw / STEPS_FILE).read_text().splitlines()][:1500]  # the busy part only
    (raw / STEPS_FILE).write_text("".join(json.dumps(r) + "\n" for r in steps))
    pack = write_pack(raw, tmp_path / "pack", "tiny-llama", {"model_type": "llama"}, "unit test")
    assert pack.meta.warmup == {} and len(pack.steps) == 1500


def test_thin_cells_borrow_the_shorter_idle_bin() -> None:
    idx = pd.RangeIndex(6)
    cold = pd.DataFrame({"latency_us": [1000.0 + 500] * 3 + [1000.0 + 4000] * 3}, index=idx)
    idle = pd.Series([0.1] * 3 + [2.0] * 3, index=idx)
    pos = pd.Series([0] * 6, index=idx)
    w = fit_warmup(cold, idle, pos, lambda df: np.full(len(df), 1000.0))
    assert [r[0] for r in w.extra_us] == [500.0, 500.0, 500.0, 4000.0]  # 0.2-0.6 and 0.6-1.5 s borrow 0.05-0.2
    assert [r[0] for r in w.samples] == [3, 0, 0, 3]


def test_emulator_side_adds_the_extra_after_idle_only() -> None:
    w = Warmup(extra_us=tuple(tuple(r) for r in TRUE_EXTRA_US))
    state = WarmupState(w)
    clock = VirtualClock()
    tl = DeviceTimeline(clock)
    assert math.isinf(tl.idle_before(0.0))  # before the first step: idle for ever (last bin)
    extras = []
    for launched, lat in ((0.0, 0.01), (0.0105, 0.004), (0.015, 0.004), (1.0, 0.01), (1.0101, 0.004)):
        extra = state.extra_s(tl.idle_before(launched))
        extras.append(round(extra * 1e6, 1))
        tl.book(lat + extra, launched)
    # run 1 opened by "for ever" (last bin): positions 0, 1, 2; run 2 opened by ~0.97 s idle (bin 0.6-1.5 s)
    assert extras == [9000.0, 2000.0, 500.0, 6000.0, 1500.0]
    assert WarmupState(Warmup()).extra_s(5.0) == 0.0  # packs without a warm-up model: nothing added


@pytest.mark.parametrize("bad", [{"edges_s": [0.05, 0.2]}, {"edges_s": [0.05, 0.2], "extra_us": [[1.0, 2.0]]},
                                 {"edges_s": [0.2, 0.05], "extra_us": [[1.0], [2.0]]},
                                 {"edges_s": [0.05], "extra_us": [["x"]]}])
def test_a_broken_warmup_field_is_one_line_naming_the_fix(tmp_path: Path, bad: dict) -> None:
    from llm_emu.errors import EmuError

    _synthetic_capture(tmp_path / "raw")
    write_pack(tmp_path / "raw", tmp_path / "pack", "tiny-llama", {"model_type": "llama"}, "unit test")
    meta_path = tmp_path / "pack" / "profile.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "warmup": bad}))
    with pytest.raises(EmuError, match=r"warmup: .*delete the warmup field") as err:
        load_pack(tmp_path / "pack")
    assert "\n" not in str(err.value)
