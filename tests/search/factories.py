"""Small factories for search tests (vLLM tests/v1/core/utils.py style)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from search.runner import SearchTask, task_from_sweep

SPACE = {
    "max_num_seqs": {"low": 8, "high": 256, "step": 8},
    "max_num_batched_tokens": {"low": 1024, "high": 8192, "step": 1024},
}

BASE_SWEEP: dict[str, Any] = {
    "name": "t",
    "model": "llama-3.1-8b",
    "engine_args": {"max_model_len": 4096},
    "slo": {"ttft_ms": 500, "attainment": 0.9},
    "search": {
        "objective": "slo_throughput",
        "rate": 6,
        "n_trials": 10,
        "space": SPACE,
        "heartbeat_interval_s": 1,
        "grace_period_s": 2,
    },
}


def sweep(**search: Any) -> dict[str, Any]:
    """A raw sweep mapping with `search` keys overridden (None deletes a key)."""
    doc = copy.deepcopy(BASE_SWEEP)
    for k, v in search.items():
        if v is None:
            doc["search"].pop(k, None)
        else:
            doc["search"][k] = v
    return doc


def create_task(out_dir: Path, **search: Any) -> SearchTask:
    return task_from_sweep(sweep(**search), out_dir)
