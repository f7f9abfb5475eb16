"""Atomic writes: the target is the old file or the new one, never half; no temp file is left behind."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest

from llm_emu.fsutil import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_parquet, atomic_write_text


def test_writes_replace_and_create_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_error_inside_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_open(target, "wb") as fh:
        fh.write(b"half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_failed_replace_removes_the_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "f.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_json_and_parquet_round_trip(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "d.json", {"b": 1, "a": Path("/x")}, sort_keys=True)
    assert json.loads((tmp_path / "d.json").read_text()) == {"a": "/x", "b": 1}
    df = pd.DataFrame({"rate": [1.0, float("inf")], "kind": ["real", "emulated"]})
    atomic_write_parquet(tmp_path / "r.parquet", df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), df)
