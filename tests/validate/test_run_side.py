"""`llm-emu validate`'s side runner over a fake measure loop: every finished cell is on disk at once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest

from llm_emu.capture.cpuset import ServerPinning
from llm_emu.validate.cli import run_side
from tests.measure.fakes import Events, fake_loop


def _args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(profile=str(tmp_path), model="tiny-llama", dataset="random", num_prompts=5, seed=3,
                              emu_seed=0, vllm_args=[])


def test_rows_are_persisted_per_cell_and_survive_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = Events(fail_at_rate=6)
    monkeypatch.setattr("llm_emu.measure.measure_loop", lambda: fake_loop(events))
    cells = [(1.0, 2.0), (0.25, 4.0), (1.0, 6.0)]
    with pytest.raises(RuntimeError, match="rate 6"):
        run_side("emulated", _args(tmp_path), ServerPinning("none"), tmp_path, cells)
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert list(zip(df["burstiness"], df["rate"], strict=True)) == [(1.0, 2.0), (0.25, 4.0)]
    assert (df["kind"] == "emulated").all() and (df["completed"] == 5).all() and (df["startup_s"] == 1.5).all()
    assert "ttfts" not in df.columns
    assert events.log[-1] == "stop" and [c["workload"].seed for c in events.bench_calls] == [3, 3, 3]
