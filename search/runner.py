"""Run a search on its own: an OptunaSource driven against any Evaluator (tests, notebooks, other executors).

`llm-emu sweep` drives the same OptunaSource through the orchestrator's pipeline instead (prune, Ray, results).
"""

from __future__ import annotations

from collections.abc import Callable

from search.evaluator import Evaluator, drive
from search.source import OptunaSource
from search.task import SearchResult, SearchTask


def run_study(task: SearchTask, evaluator: Evaluator, *, log: Callable[[str], None] = print,
              resume: bool = True, retry_failed: bool = False) -> SearchResult:
    """Run (or resume) the study until n_trials count, timeout_s passes, or the space is exhausted.

    With ``verify_top_k`` and a virtual-time task, the best configs are then evaluated again in wall-clock time
    (``SearchResult.verified``).
    """
    with OptunaSource(task, resume=resume, retry_failed=retry_failed, log=log) as source:
        drive(source, evaluator)
        if checks := source.verify_requests():
            for request, outcome in zip(checks, evaluator.evaluate(checks), strict=True):
                source.tell(request, outcome)
        return source.result()


def run_search(task: SearchTask, evaluator: Evaluator, *, log: Callable[[str], None] = print) -> SearchResult:
    """``run_study``, then the search's outputs (search_results.*, search.md, plots) in ``task.out_dir``."""
    from search.report import write_report

    result = run_study(task, evaluator, log=log)
    result.files.update(write_report(result, log=log))
    return result
