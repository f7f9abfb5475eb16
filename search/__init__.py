"""Optuna searches over vLLM engine args: decides WHAT to try; the orchestrator decides where it runs.

Public API: `run_search`, `run_study`, `Evaluator` / `TrialRequest` / `TrialOutcome`, `parse_search_spec`.
Never imports Ray.
"""

from __future__ import annotations

from search.evaluator import Evaluator, TrialOutcome, TrialRequest, config_key
from search.runner import SearchResult, SearchTask, run_search, run_study, task_from_sweep
from search.spec import SearchSpec, parse_search_spec

__all__ = [
    "Evaluator",
    "SearchResult",
    "SearchSpec",
    "SearchTask",
    "TrialOutcome",
    "TrialRequest",
    "config_key",
    "parse_search_spec",
    "run_search",
    "run_study",
    "task_from_sweep",
]
