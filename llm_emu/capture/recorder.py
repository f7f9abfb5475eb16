"""Incremental step/request recording for the capture worker, and the reading side for `llm-emu profile`.

The recording worker runs inside vLLM's worker process. SIGTERM can tear it down without ``shutdown()``, so
every record is one JSON line, written and flushed as soon as it exists. Files in the capture directory::

    steps.jsonl      one line per engine step with tokens: StepFeatures fields + latency_us (+ t, mode)
    requests.jsonl   one line per finished request: prompt_len, output_len, finish_reason
    worker.json      resolved engine config, num_gpu_blocks, device, vLLM version (rewritten when known)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from llm_emu.profile.features import STEP_COLUMNS, StepFeatures

KEY = "llm_emu_capture"
"""Key of the capture settings inside vLLM's ``--additional-config``."""
STEPS_FILE = "steps.jsonl"
REQUESTS_FILE = "requests.jsonl"
WORKER_FILE = "worker.json"


def additional_config(out: str | os.PathLike[str]) -> str:
    """The ``--additional-config`` JSON that turns recording on and names the capture directory."""
    return json.dumps({KEY: {"out": str(Path(out).resolve())}})


def capture_dir(vllm_config: Any) -> Path | None:
    """The capture directory from vLLM's ``additional_config`` (None: recording off)."""
    raw = (getattr(vllm_config, "additional_config", None) or {}).get(KEY)
    if not isinstance(raw, dict) or not raw.get("out"):
        return None
    return Path(raw["out"])


class JsonLines:
    """Append-only JSON-lines file, line buffered (each record reaches the OS when written)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def step_record(features: StepFeatures, latency_s: float, **extra: Any) -> dict[str, Any]:
    """One steps.jsonl line."""
    rec: dict[str, Any] = asdict(features)
    rec["latency_us"] = round(latency_s * 1e6, 3)
    rec.update(extra)
    return rec


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill: skip it
                continue
    return rows


def read_steps(root: Path) -> pd.DataFrame:
    """steps.jsonl as a DataFrame with the pack's STEP_COLUMNS first (empty frame if nothing was recorded)."""
    rows = _read_jsonl(root / STEPS_FILE)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "latency_us" else "int64") for c in STEP_COLUMNS})
    for c in STEP_COLUMNS:
        if c != "latency_us":
            df[c] = df[c].astype("int64")
    df["latency_us"] = df["latency_us"].astype("float64")
    return df


def read_requests(root: Path) -> pd.DataFrame:
    """requests.jsonl as a DataFrame (prompt_len, output_len, finish_reason)."""
    df = pd.DataFrame(_read_jsonl(root / REQUESTS_FILE))
    if df.empty:
        return pd.DataFrame({"prompt_len": pd.Series(dtype="int64"), "output_len": pd.Series(dtype="int64"),
                             "finish_reason": pd.Series(dtype="object")})
    return df[["prompt_len", "output_len", "finish_reason"]].astype(
        {"prompt_len": "int64", "output_len": "int64"})


def read_worker_info(root: Path) -> dict[str, Any]:
    path = root / WORKER_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
