"""What a search needs besides the evaluator (SearchTask), what it found (SearchResult), and how to rank it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from llm_emu.errors import SpecError
from llm_emu.slo import SLOSpec
from search.spec import SearchSpec
from search.storage import default_storage_url

CONSTRAINTS_ATTR = "constraints"
"""User attr mirroring a trial's constraint values (> 0 = violated), for result rows and resumed studies.

The samplers themselves read Optuna's per-trial constraints (``Trial.set_constraint``): TPE, GP and NSGA-II
honour them, and ``study.best_trials`` filters on them.
"""
BASELINE_ATTR = "baseline"
"""User attr marking the trial run with vLLM's defaults for the searched args."""


class SweepLike(Protocol):
    """The parts of a sweep spec (orchestrator.spec.SweepSpec) a search reads."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def engine_args(self) -> Mapping[str, Any]: ...

    @property
    def slo(self) -> SLOSpec | None: ...

    @property
    def search(self) -> SearchSpec | None: ...

    @property
    def clock(self) -> str: ...

    def output_dir(self) -> Path: ...


@dataclass(frozen=True)
class SearchTask:
    """Everything a search needs besides the evaluator: its section plus the sweep's base fields."""

    name: str
    """The sweep's name."""
    model: str
    """The sweep's model (for `vllm serve` command lines)."""
    engine_args: Mapping[str, Any]
    """The sweep's fixed engine args; trials override some of them."""
    out_dir: Path
    """Where study.db and the search's outputs go."""
    search: SearchSpec
    """The `search:` section."""
    slo: SLOSpec | None = None
    """The sweep's SLO; its ``attainment`` is the target the trials' ``slo_attainment`` is compared with."""
    clock: str = "wall"
    """The clock the search's trials run in (a wall-clock re-check runs the best ones in "wall")."""

    @property
    def storage_url(self) -> str:
        """The study's SQLAlchemy URL."""
        return self.search.storage or default_storage_url(self.out_dir)

    @property
    def study_name(self) -> str:
        """The study's name."""
        return self.search.study_name or f"{self.name}-search"


def task_from_sweep(sweep: SweepLike, out_dir: str | Path | None = None) -> SearchTask:
    """The SearchTask of a loaded sweep spec with a ``search:`` section."""
    if sweep.search is None:
        raise SpecError("the sweep spec has no `search:` section")
    return SearchTask(name=sweep.name, model=sweep.model, engine_args=dict(sweep.engine_args),
                      out_dir=Path(out_dir) if out_dir is not None else sweep.output_dir(), search=sweep.search,
                      slo=sweep.slo, clock=sweep.clock)


@dataclass
class SearchResult:
    """What a finished (or budget-exhausted) search found."""

    study: optuna.Study
    best: list[FrozenTrial]
    """Best feasible trial (single objective) or the Pareto front (pareto)."""
    baseline: FrozenTrial | None
    task: SearchTask
    files: dict[str, Path] = field(default_factory=dict)
    verified: dict[int, dict[float, dict[str, Any]]] = field(default_factory=dict)
    """Wall-clock re-check (verify_top_k): trial number -> rate -> result row; empty when none was run."""


def feasible(t: FrozenTrial) -> bool:
    """All stored constraint values <= 0 (no constraints stored = feasible)."""
    return all(c <= 0 for c in t.user_attrs.get(CONSTRAINTS_ATTR, ()))


def _dominates(a: FrozenTrial, b: FrozenTrial, signs: list[float]) -> bool:
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a.values, b.values, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def ranked_trials(study: optuna.Study, spec: SearchSpec) -> list[FrozenTrial]:
    """Feasible COMPLETE trials, best first: by value (ties: earlier first), or the Pareto front by throughput."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if feasible(t)]
    if spec.objective != "pareto":
        return sorted(done, key=lambda t: (-t.values[0], t.number))
    signs = [1.0 if d == "maximize" else -1.0 for d in spec.directions]
    front = [t for t in done if not any(_dominates(o, t, signs) for o in done)]
    return sorted(front, key=lambda t: -t.values[0])


def best_trials(study: optuna.Study, spec: SearchSpec) -> list[FrozenTrial]:
    """Best feasible COMPLETE trial, or the feasible Pareto front (non-dominated, sorted by throughput)."""
    ranked = ranked_trials(study, spec)
    return ranked if spec.objective == "pareto" else ranked[:1]


def baseline_trial(study: optuna.Study) -> FrozenTrial | None:
    """The last finished trial run with vLLM's defaults for the searched args."""
    base = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(BASELINE_ATTR) and t.state in (TrialState.COMPLETE, TrialState.FAIL)
    ]
    return base[-1] if base else None
