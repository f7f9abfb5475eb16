"""Step-level oracle accuracy: traces attributed to runs by time window, compared per batch-shape bucket."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_emu.profile.features import StepFeatures
from llm_emu.validate import steps as vsteps

WALL0, MONO0 = 1.7e9, 5000.0


def _write(path: Path, rows: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _feat(decodes: int) -> dict[str, int]:
    return {"num_prefill_tokens": 0, "num_prefill_reqs": 0, "num_decode_reqs": decodes,
            "decode_context_tokens": 100 * decodes, "prefill_context_tokens": 0}


def _fixture(tmp: Path) -> pd.DataFrame:
    """One cell: real run 0 (10 ms decode steps), emulated (11 ms), real run 1 (10.2 ms), 50 steps each."""
    rng = np.random.default_rng(0)
    real, emu, results = [], [], []
    for order, (kind, ms) in enumerate([("real", 10.0), ("emulated", 11.0), ("real", 10.2)]):
        start = 100.0 * order
        lat = ms * (1 + 0.01 * rng.standard_normal(50))
        ts = start + 1.0 + np.arange(50) * 0.02
        if kind == "real":
            real += [{**_feat(1), "latency_us": x * 1e3, "t": WALL0 + t} for x, t in zip(lat, ts, strict=True)]
        else:
            emu += [{**_feat(1), "latency": x * 1e-3, "released": MONO0 + t} for x, t in zip(lat, ts, strict=True)]
        results.append({"kind": kind, "burstiness": 1.0, "rate": 2.0, "repeat": 0, "run": 1 if order == 2 else 0,
                        "t_wall_start": WALL0 + start, "t_wall_end": WALL0 + start + 50,
                        "t_mono_start": MONO0 + start, "t_mono_end": MONO0 + start + 50})
    real.append({**_feat(1), "latency_us": 1e9, "t": WALL0 + 70.0})  # between windows: dropped
    _write(tmp / vsteps.REAL_STEPS, real)
    _write(tmp / vsteps.EMU_STEPS, emu)
    return pd.DataFrame(results)


class _Oracle:
    def expected(self, features: StepFeatures) -> float:
        return 0.0105 if features.num_decode_reqs == 1 else 1.0


def test_bucket_labels() -> None:
    df = pd.DataFrame({"num_prefill_tokens": [0, 64, 100, 2000], "num_decode_reqs": [1, 0, 3, 200]})
    assert vsteps.bucket(df).tolist() == ["P0 D1", "P1-64 D0", "P65-256 D3-4", "P>1024 D>128"]


def test_step_report_compares_buckets_aa_and_oracle(tmp_path: Path) -> None:
    results = _fixture(tmp_path)
    frame, text = vsteps.step_report(tmp_path, results, _Oracle())
    pooled = frame[frame["rate"].isna()].set_index("bucket").loc["P0 D1"]
    assert pooled["n_real"] == 100 and pooled["n_emu"] == 50  # the stray step outside the windows is dropped
    real_p50 = np.median(np.r_[np.full(1, 10.0), np.full(1, 10.2)])
    assert pooled["p50_err_pct"] == pytest.approx(100 * (11.0 - real_p50) / real_p50, abs=1.0)
    assert pooled["aa_p50_pct"] == pytest.approx(2.0, abs=0.6)
    assert pooled["oracle_median_err_pct"] == pytest.approx(100 * (10.5 - 10.1) / 10.1, abs=1.0)
    assert "| P0 D1 | 100 | 50 |" in text
    per_cell = frame[frame["rate"] == 2.0]
    assert len(per_cell) == 1


def test_step_report_without_traces_is_empty(tmp_path: Path) -> None:
    frame, text = vsteps.step_report(tmp_path, pd.DataFrame({"kind": ["real"], "burstiness": [1.0], "rate": [1.0]}))
    assert frame.empty and "no step traces" in text
