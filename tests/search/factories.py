"""Small factories for search tests (vLLM tests/v1/core/utils.py style): a sweep spec with a search section,
loaded through the one spec loader, as a SearchTask."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from orchestrator.spec import SweepSpec, loads_spec
from search.task import SearchTask, task_from_sweep

SPACE = {
    "max_num_seqs": {"low": 8, "high": 256, "step": 8},
    "max_num_batched_tokens": {"low": 1024, "high": 8192, "step": 1024},
}

BASE_SWEEP: dict[str, Any] = {
    "name": "t",
    "model": "llama-3.1-8b",
    "profile": "aic:h100_sxm",
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


def load(doc: dict[str, Any]) -> SweepSpec:
    """A mapping through the spec loader (as `llm-emu sweep` reads the file)."""
    return loads_spec(yaml.safe_dump(doc, sort_keys=False), "spec.yaml")


def create_task(out_dir: Path, **search: Any) -> SearchTask:
    """The SearchTask of BASE_SWEEP with `search` keys overridden."""
    return task_from_sweep(load(sweep(**search)), out_dir)
