"""What to try: proposal sources (the grid, Optuna studies) over vLLM engine args; never imports Ray.

The orchestrator decides where and how each proposal runs (see search.evaluator for the boundary).
Public API: `GridSource`, `OptunaSource`, `drive`, `run_study` / `run_search`, `SearchTask`, `task_from_sweep`,
`Evaluator` / `ProposalSource` / `TrialRequest` / `TrialOutcome`.
"""

from __future__ import annotations

from search.evaluator import Evaluator, ProposalSource, TrialOutcome, TrialRequest, config_key, drive
from search.grid import GridSource
from search.runner import run_search, run_study
from search.source import OptunaSource
from search.spec import SearchSpec
from search.task import SearchResult, SearchTask, task_from_sweep

__all__ = [
    "Evaluator",
    "GridSource",
    "OptunaSource",
    "ProposalSource",
    "SearchResult",
    "SearchSpec",
    "SearchTask",
    "TrialOutcome",
    "TrialRequest",
    "config_key",
    "drive",
    "run_search",
    "run_study",
    "task_from_sweep",
]
