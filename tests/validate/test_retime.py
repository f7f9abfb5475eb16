"""The device drift check: the device's speed per real run, and the retimed pack and host model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_emu.errors import EmuError
from llm_emu.profile.features import StepFeatures
from llm_emu.profile.pack import load_pack, save_pack
from llm_emu.validate import retime
from llm_emu.virtual.host import HostModel
from tests.factories import make_pack, synthetic_steps


class _Oracle:
    """Expects 10 ms per decode request (the thing under test is the speed, not an oracle)."""

    def expected(self, features: StepFeatures) -> float:
        return 0.010 * max(1, features.num_decode_reqs)


def _steps(rate: float, run: int, ms_per_req: list[float], kind: str = "real") -> pd.DataFrame:
    rows = [{"num_prefill_tokens": 0, "num_prefill_reqs": 0, "num_decode_reqs": d, "decode_context_tokens": 10 * d,
             "prefill_context_tokens": 0, "kind": kind, "latency_s": ms * d * 1e-3, "t": float(i),
             "burstiness": 1.0, "rate": rate, "repeat": 0, "run": run}
            for i, (d, ms) in enumerate((1 + i % 4, ms) for i, ms in enumerate(ms_per_req))]
    return pd.DataFrame(rows)


def test_device_speed_is_device_time_over_expected_per_real_run() -> None:
    n = retime.MIN_STEPS
    # run 0: every step 20 % slower than expected; run 1: 10 % slower, plus one very slow step that counts in
    # the device time (what TPOT follows), not only in a median
    slow = [11.0] * (n - 1) + [11.0 * 50]
    steps = pd.concat([_steps(0.5, 0, [12.0] * n), _steps(0.5, 1, slow),
                       _steps(0.5, 0, [99.0] * n, kind="emulated"),  # the emulated side is not the device
                       _steps(2.0, 0, [10.0] * (n - 1))],  # too few steps: no speed
                      ignore_index=True)
    sp = retime.device_speed(steps, _Oracle()).set_index(["rate", "run"])["speed"]
    assert sp[(0.5, 0)] == pytest.approx(1.2)
    d = np.array([1 + i % 4 for i in range(n)])
    assert sp[(0.5, 1)] == pytest.approx((1.1 * d[:-1].sum() + 1.1 * 50 * d[-1]) / d.sum())
    assert np.isnan(sp[(2.0, 0)])
    cells = retime.cell_speeds(retime.device_speed(steps, _Oracle()))
    assert cells[(1.0, 0.5)] == pytest.approx((sp[(0.5, 0)] + sp[(0.5, 1)]) / 2)
    assert cells[(1.0, 2.0)] == pytest.approx(cells[(1.0, 0.5)])  # no speed of its own: the overall mean


def test_no_real_steps_is_a_one_line_error() -> None:
    empty = retime.device_speed(pd.DataFrame(), _Oracle())
    with pytest.raises(EmuError, match="--no-step-trace"):
        retime.cell_speeds(empty)


def test_retimed_pack_scales_every_step_latency_once(tmp_path: Path) -> None:
    src = save_pack(make_pack(synthetic_steps(200)), tmp_path / "pack")
    out = retime.retimed_pack(src, 1.25, tmp_path / "retimed")
    before, after = load_pack(src), load_pack(out)
    np.testing.assert_allclose(after.steps["latency_us"], before.steps["latency_us"] * 1.25)
    features = [c for c in before.steps.columns if c != "latency_us"]
    pd.testing.assert_frame_equal(after.steps[features], before.steps[features])
    assert "x1.2500" in after.meta.provenance.method and after.meta.engine == before.meta.engine


def test_scaled_host_scales_every_time_term() -> None:
    host = HostModel(step_base_s=0.001, step_per_req_s=2e-5, request_in_s=0.004, request_in_per_token_s=1e-6,
                     api_request_s=0.003, api_output_s=0.0002, output_s=0.002, source="fit")
    scaled = retime.scaled_host(host, 1.5)
    f = StepFeatures(num_prefill_tokens=10, num_prefill_reqs=1, num_decode_reqs=3, decode_context_tokens=30,
                     prefill_context_tokens=0)
    assert scaled.step_cost(f) == pytest.approx(1.5 * host.step_cost(f))
    assert scaled.request_in(100) == pytest.approx(1.5 * host.request_in(100))
    for name in ("api_request_s", "api_output_s", "output_s"):
        assert getattr(scaled, name) == pytest.approx(1.5 * getattr(host, name))
    assert scaled.source.startswith("fit") and "x1.500" in scaled.source


def test_write_section_replaces_only_the_drift_check(tmp_path: Path) -> None:
    md = tmp_path / "errors.md"
    md.write_text("# errors\n\n| a |\n\n" + retime.SECTION + "\n\nold tables\n")
    retime.write_section(md, retime.SECTION + "\n\nnew tables\n")
    text = md.read_text()
    assert text.startswith("# errors\n\n| a |\n") and "new tables" in text and "old tables" not in text
    assert text.count(retime.SECTION) == 1
    retime.write_section(md, retime.SECTION + "\n\nnewer\n")
    assert md.read_text().count(retime.SECTION) == 1 and "| a |" in md.read_text()


def _rows(kind: str, ttft: float, run: int, **extra: float) -> dict[str, object]:
    return {"kind": kind, "burstiness": 1.0, "rate": 2.0, "repeat": 0, "run": run, "mean_ttft_ms": ttft,
            "output_throughput": 50.0, **extra}


def test_saved_replay_rebuilds_the_section_without_replaying(tmp_path: Path) -> None:
    """A report rebuilt with nothing to run takes the drift check's tables from the saved replay (the pack
    path does not exist, so a replay would fail) and rates the retimed errors against the goals."""
    real = [_rows("real", 100.0, 0), _rows("emulated", 90.0, 0), _rows("real", 102.0, 1)]
    pd.DataFrame(real).to_parquet(tmp_path / "results.parquet", index=False)
    assert not retime.saved_replay(tmp_path)
    with pytest.raises(EmuError, match="drop --saved"):
        retime.section(tmp_path, tmp_path / "no-pack", "m", HostModel(), saved=True)
    saved = [_rows(retime.KIND_VIRTUAL, 95.0, 0, speed=1.0), _rows(retime.KIND_RETIMED, 102.0, 0, speed=1.1)]
    pd.DataFrame(saved).to_parquet(tmp_path / retime.RESULTS, index=False)
    assert retime.saved_replay(tmp_path)
    text = retime.section(tmp_path, tmp_path / "no-pack", "m", HostModel(), saved=True)
    assert "| speed | 1.100 |" in text
    assert "| TTFT mean | +1.0 | 1.0 | <= 4 met |" in text  # retimed: 102 vs the real runs' mean 101
    assert "| TTFT mean | met | <= 4 | 1/0/0 |" in text


def test_saved_host_fit_is_loaded_not_refitted(tmp_path: Path) -> None:
    """A rebuild reads the host model an earlier fit saved (there are no traces here to fit one on)."""
    fitted = HostModel(step_base_s=0.001, source="fitted earlier")
    (tmp_path / retime.HOST_FIT).write_text(fitted.to_json() + "\n")
    assert retime.host_for(tmp_path, "trace", saved=True) == fitted
