"""The `search:` section of a sweep spec: typed, validated at load, every error one line with ``file:line``.

It is built from the same located YAML document as the rest of the spec (``orchestrator.spec`` hands over the
document and the section's path), so a bad search key is reported exactly like a bad grid key. The SLO and the
pruning constraints are the spec's top-level ``slo:`` and ``constraints:`` (one definition each, shared with
grid sweeps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from llm_emu.yamlspec import Located, Path_, fail

Objective = Literal["slo_throughput", "capacity", "pareto"]
ThroughputMetric = Literal["request_goodput", "request_throughput", "output_throughput", "total_token_throughput"]
MAX_GRID_POINTS = 64
"""Most values an int range may expand to for the grid sampler (beyond that, list them in ``grid:``)."""


@dataclass(frozen=True)
class ParamSpec:
    """One engine argument to search over; its name (vLLM's Python name) is the key in ``search.space``."""

    type: Literal["int", "float", "categorical", "bool"] | None = None
    """Kind of values (default: categorical when ``choices`` is given, else int)."""
    low: int | float | None = None
    """Lower bound (int/float)."""
    high: int | float | None = None
    """Upper bound, inclusive (int/float)."""
    log: bool = False
    """Sample on a log scale (int/float; not with step)."""
    step: int | float | None = None
    """Grid step (int/float)."""
    choices: tuple[Any, ...] = ()
    """Values of a categorical parameter (a plain list ``[16, 32]`` is shorthand for ``{choices: [16, 32]}``)."""
    when: dict[str, Any] | str | None = None
    """Only suggest this parameter when these searched parameters have these values (a bool parameter's
    name means ``{name: true}``), e.g. long_prefill_token_threshold only with chunked prefill."""
    grid: tuple[Any, ...] = ()
    """Explicit values for the grid sampler (default: all values of an int/categorical/bool space)."""

    @property
    def kind(self) -> str:
        """The effective type."""
        return self.type or ("categorical" if self.choices else "int")

    @property
    def conditions(self) -> dict[str, Any]:
        """``when`` as a mapping."""
        return as_conditions(self.when)

    def grid_values(self) -> tuple[Any, ...] | None:
        """Values the grid sampler enumerates (None: too many or infinitely many)."""
        if self.grid:
            return self.grid
        if self.kind == "bool":
            return (False, True)
        if self.kind == "categorical":
            return self.choices
        if self.kind == "int" and self.low is not None and self.high is not None:
            values = tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
            return values if len(values) <= MAX_GRID_POINTS else None
        return None

    def values_to_check(self) -> tuple[Any, ...]:
        """Representative values (bounds, choices) for checking against vLLM's argument parser."""
        if self.kind == "bool":
            return (False, True)
        if self.kind == "categorical":
            return self.choices
        return tuple(v for v in (self.low, self.high) if v is not None) + self.grid


@dataclass(frozen=True)
class CapacitySpec:
    """Rate bounds and stopping tolerance of the capacity bisection."""

    low: float
    """Lowest request rate tried (req/s); a config failing the SLO here has capacity 0."""
    high: float
    """Highest request rate tried (req/s); a config meeting the SLO here has capacity `high`."""
    tolerance: float = 0.5
    """Stop bisecting when the bracket is narrower than this (req/s)."""


@dataclass(frozen=True)
class SearchSpec:
    """The validated `search:` section: an Optuna study as the sweep's proposal source."""

    objective: Objective
    """slo_throughput | capacity | pareto."""
    space: dict[str, ParamSpec]
    """Engine arg (vLLM Python name) -> its range; searched in this order (conditions see earlier values)."""
    sampler: str | None = None
    """A name in search.samplers.SAMPLER_REGISTRY: tpe | gp | nsgaii | random | grid (default: tpe; nsgaii for
    pareto)."""
    n_trials: int | None = None
    """Trials to finish (COMPLETE, PRUNED, or FAIL after retries); the baseline counts as one."""
    timeout_s: float | None = None
    """Stop asking new trials after this many seconds of this run."""
    parallelism: int = 1
    """Trials asked per batch and run together."""
    seed: int | None = 0
    """Sampler seed."""
    storage: str | None = None
    """SQLAlchemy URL of the study; default sqlite:///OUT/study.db."""
    study_name: str | None = None
    """Default: "<sweep name>-search"."""
    rate: float | None = None
    """Request rate (req/s) of slo_throughput and pareto trials."""
    capacity: CapacitySpec | None = None
    """Bisection bounds of the capacity objective."""
    metric: ThroughputMetric = "request_goodput"
    """Throughput metric maximised by slo_throughput and pareto."""
    latency_metric: str = "p99_e2el_ms"
    """Latency metric minimised by pareto (any vLLM ``*_ms`` key)."""
    baseline: bool = True
    """Enqueue vLLM's defaults (no overrides) as the first trial; results are reported relative to it."""
    verify_top_k: int = 0
    """After a virtual-time search, run the K best configs again in wall-clock mode (report: both side by side)."""
    heartbeat_interval_s: int = 10
    """Seconds between heartbeats of running trials in the study storage."""
    grace_period_s: int = 30
    """A RUNNING trial without a heartbeat for this long belongs to a dead controller and is retried."""
    max_retry: int = 2
    """Retries of a trial whose controller died."""
    max_duplicate_asks: int = 50
    """Consecutive already-tried configs proposed before the space counts as exhausted."""

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna study directions for the objective."""
        return ["maximize", "minimize"] if self.objective == "pareto" else ["maximize"]

    @property
    def sampler_name(self) -> str:
        """The sampler, defaults resolved."""
        return self.sampler or ("nsgaii" if self.objective == "pareto" else "tpe")


def as_conditions(raw: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """A ``when``/``unless`` value as a mapping: a bare name means ``{name: true}``."""
    if raw is None:
        return {}
    return {raw.replace("-", "_"): True} if isinstance(raw, str) else {k.replace("-", "_"): v for k, v in raw.items()}


def normalise_section(raw: Any) -> Any:
    """The raw section with the list shorthand of categorical parameters expanded (``block_size: [16, 32]``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict):
        return raw
    space = {k: {"choices": v} if isinstance(v, list) else v for k, v in raw["space"].items()}
    return {**raw, "space": space}


def validate_search(doc: Located, path: Path_, spec: SearchSpec, *, has_slo: bool) -> SearchSpec:
    """Check a built `search:` section (at ``path`` of ``doc``) beyond its types; names normalised.

    Args:
        doc: the whole located spec document (for file:line).
        path: where the section sits, e.g. ``("search",)``.
        spec: the section as built from ``normalise_section(raw)``.
        has_slo: whether the spec has a top-level ``slo``.

    Raises:
        SpecError: one line, ``file:line: search.key: problem; fix``.
    """
    for name, p in spec.space.items():
        _check_param(doc, (*path, "space", name), name, p, spec)
    _check_budget(doc, path, spec)
    _check_objective(doc, path, spec, has_slo)
    return replace(spec, space={k.replace("-", "_"): v for k, v in spec.space.items()})


def _check_param(doc: Located, where: Path_, name: str, p: ParamSpec, spec: SearchSpec) -> None:
    if p.kind in ("int", "float"):
        if p.low is None or p.high is None:
            raise fail(doc, where, f"a {p.kind} parameter needs `low` and `high`")
        if p.high < p.low:
            raise fail(doc, where, f"high ({p.high}) is below low ({p.low}); swap them")
        if p.log and p.step is not None:
            raise fail(doc, where, "`log` and `step` cannot be combined (Optuna's rule); drop one")
        if p.log and p.low <= 0:
            raise fail(doc, where, f"a log-scale parameter needs low > 0, got {p.low}")
        if p.kind == "int" and any(isinstance(v, float) for v in (p.low, p.high, p.step)):
            raise fail(doc, where, f"an int parameter needs int low/high/step, got {p.low}/{p.high}/{p.step}")
    elif p.kind == "categorical" and not p.choices:
        raise fail(doc, where, "a categorical parameter needs a non-empty `choices` list")
    for cond in p.conditions:
        if cond not in spec.space or list(spec.space).index(cond) >= list(spec.space).index(name):
            raise fail(doc, (*where, "when"), f"refers to {cond!r}, which is not a search.space parameter listed "
                                              f"before {name!r}; list it earlier in search.space")
    if spec.sampler == "grid" and p.grid_values() is None:
        raise fail(doc, where, f"the grid sampler needs finite values; add `grid: [v1, v2, ...]` (an int range "
                               f"gives at most {MAX_GRID_POINTS} points)")


def _check_budget(doc: Located, path: Path_, spec: SearchSpec) -> None:
    from search.samplers import SAMPLER_REGISTRY  # imports Optuna: only once a search section is there

    if spec.sampler is not None and spec.sampler not in SAMPLER_REGISTRY:
        raise fail(doc, (*path, "sampler"), f"unknown sampler {spec.sampler!r}; valid samplers: "
                                            f"{', '.join(SAMPLER_REGISTRY)}")
    if not spec.space:
        raise fail(doc, (*path, "space"), "map engine-arg names to ranges, e.g. max_num_seqs: {low: 8, high: 256}")
    checks: list[tuple[bool, str, str]] = [
        (spec.n_trials is not None or spec.timeout_s is not None, "n_trials",
         "give `n_trials` and/or `timeout_s` so the search knows when to stop"),
        (spec.n_trials is None or spec.n_trials >= 1, "n_trials", f"must be >= 1, got {spec.n_trials}"),
        (spec.timeout_s is None or spec.timeout_s > 0, "timeout_s", f"must be > 0, got {spec.timeout_s}"),
        (spec.parallelism >= 1, "parallelism", f"must be >= 1, got {spec.parallelism}"),
        (spec.verify_top_k >= 0, "verify_top_k", f"must be >= 0, got {spec.verify_top_k}"),
        (spec.latency_metric.endswith("_ms"), "latency_metric",
         f"must be a vLLM *_ms key, e.g. p99_e2el_ms; got {spec.latency_metric!r}"),
        (spec.heartbeat_interval_s >= 1, "heartbeat_interval_s", "must be >= 1"),
        (spec.grace_period_s > spec.heartbeat_interval_s, "grace_period_s", "must exceed heartbeat_interval_s"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise fail(doc, (*path, key), message)


def _check_objective(doc: Located, path: Path_, spec: SearchSpec, has_slo: bool) -> None:
    if spec.objective in ("slo_throughput", "capacity") and not has_slo:
        raise fail(doc, (*path, "objective"), f"{spec.objective} needs an SLO: add a top-level `slo:` with "
                                              "ttft_ms/tpot_ms/e2el_ms and attainment")
    if spec.objective in ("slo_throughput", "pareto"):
        if spec.rate is None:
            raise fail(doc, (*path, "objective"), f"{spec.objective} needs `rate` (req/s) at which trials are "
                                                  "measured; add search.rate")
        if not spec.rate > 0:
            raise fail(doc, (*path, "rate"), f"must be > 0, got {spec.rate}")
    if spec.objective == "capacity":
        cap = spec.capacity
        if cap is None:
            raise fail(doc, (*path, "objective"), "capacity needs search.capacity: {low: ..., high: ..., "
                                                  "tolerance: ...}")
        if not 0 < cap.low < cap.high or not cap.tolerance > 0:
            raise fail(doc, (*path, "capacity"), f"needs 0 < low < high and tolerance > 0, got low {cap.low}, "
                                                 f"high {cap.high}, tolerance {cap.tolerance}")
