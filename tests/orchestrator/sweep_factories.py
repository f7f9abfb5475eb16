"""Small factories for orchestrator tests: spec files and parsed `llm-emu sweep` arguments."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

import yaml

from orchestrator.cli import add_sweep_args
from orchestrator.spec import SweepSpec, load_spec

BASE_SPEC: dict[str, Any] = {
    "name": "t",
    "model": "llama-3.1-8b",
    "profile": "aic:h100_sxm",
    "engine_args": {"max_model_len": 4096},
    "grid": {"enable_chunked_prefill": [True, False], "max_num_batched_tokens": [2048, 8192]},
    "workload": {"num_prompts": 10, "request_rates": [2, "inf"]},
    "slo": {"ttft_ms": 300, "tpot_ms": 50, "attainment": 0.9},
    "resources": {"cpus_per_trial": 1, "memory_gb_per_trial": None},
    "retries": 1,
}


def write_spec(tmp_path: Path, text: str | None = None, **overrides: Any) -> Path:
    """Write a spec file: ``text`` verbatim, or BASE_SPEC with top-level keys overridden."""
    path = tmp_path / "spec.yaml"
    if text is not None:
        path.write_text(textwrap.dedent(text))
    else:
        path.write_text(yaml.safe_dump({**BASE_SPEC, **overrides}, sort_keys=False))
    return path


def make_spec(tmp_path: Path, **overrides: Any) -> SweepSpec:
    """A validated spec built from BASE_SPEC."""
    return load_spec(write_spec(tmp_path, **overrides))


def sweep_args(*argv: str) -> argparse.Namespace:
    """Parsed `llm-emu sweep` arguments."""
    parser = argparse.ArgumentParser()
    add_sweep_args(parser)
    return parser.parse_args(list(argv))
