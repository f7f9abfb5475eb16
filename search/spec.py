"""The `search:` section of a sweep spec, as typed, validated, frozen data.

Every mapping is checked against its field list: unknown keys are rejected with the valid ones listed, and
every error is one line (SpecError) that quotes the bad value and says the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from llm_emu.errors import SpecError

OBJECTIVES = ("slo_throughput", "capacity", "pareto")
SAMPLERS = ("tpe", "gp", "nsgaii", "random", "grid")
THROUGHPUT_METRICS = ("request_goodput", "request_throughput", "output_throughput", "total_token_throughput")
_OPS = ("<", "<=", ">", ">=", "==", "!=")
_MAX_GRID_POINTS = 64


def _check_keys(raw: object, cls: type, where: str) -> Mapping[str, Any]:
    """Reject non-mappings and unknown keys, listing the valid ones."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be a mapping, got {raw!r}")
    valid = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; valid keys are {valid}")
    return raw


def _positive(value: Any, where: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise SpecError(f"{where} ({value!r}) must be a finite number {bound}")
    return float(value)


@dataclass(frozen=True)
class ParamSpec:
    """One engine argument to search over (vLLM's Python name, e.g. max_num_seqs)."""

    name: str
    """vLLM engine-arg name with underscores; `vllm serve` gets it as --kebab-case."""
    type: str
    """"int", "float", "categorical" or "bool"."""
    low: float | None = None
    """Lower bound (int/float)."""
    high: float | None = None
    """Upper bound, inclusive (int/float)."""
    log: bool = False
    """Sample on a log scale (int/float; not with step)."""
    step: float | None = None
    """Grid step (int/float)."""
    choices: tuple[Any, ...] = ()
    """Values of a categorical parameter."""
    when: tuple[tuple[str, Any], ...] = ()
    """Conditions (param, value): the parameter is only suggested when all hold, e.g. long_prefill_token_
    threshold only when enable_chunked_prefill is true."""
    grid: tuple[Any, ...] = ()
    """Explicit values for the grid sampler (default: all values of an int/categorical/bool space)."""

    def grid_values(self) -> tuple[Any, ...]:
        """Values the grid sampler enumerates."""
        if self.grid:
            return self.grid
        if self.type == "bool":
            return (False, True)
        if self.type == "categorical":
            return self.choices
        if self.type == "int" and self.low is not None and self.high is not None:
            values = tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
            if len(values) <= _MAX_GRID_POINTS:
                return values
        raise SpecError(
            f"search.space.{self.name}: the grid sampler needs finite values; add `grid: [v1, v2, ...]` "
            f"(an int range gives at most {_MAX_GRID_POINTS} points)"
        )


@dataclass(frozen=True)
class Constraint:
    """A relation the engine config must satisfy, e.g. max_num_batched_tokens >= max_model_len."""

    left: str
    """A searched parameter or base engine arg."""
    op: str
    """One of <, <=, >, >=, ==, !=."""
    right: Any
    """A searched parameter, a base engine arg, or a number."""
    unless: tuple[tuple[str, Any], ...] = ()
    """Conditions (param, value) under which the constraint does not apply."""
    when: tuple[tuple[str, Any], ...] = ()
    """Conditions (param, value) outside which the constraint does not apply (the sweep spec's `when`)."""


@dataclass(frozen=True)
class SloSpec:
    """Per-request service-level objectives (vLLM's --goodput keys, in ms) and the attainment target."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None
    attainment: float = 0.9
    """Target fraction of requests that must meet all SLOs (0..1]; same key as the sweep's `slo`."""

    def goodput(self) -> dict[str, float]:
        """The SLOs as vLLM's --goodput mapping, e.g. {"ttft": 500.0}."""
        items = {"ttft": self.ttft_ms, "tpot": self.tpot_ms, "e2el": self.e2el_ms}
        return {k: v for k, v in items.items() if v is not None}


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
    """The validated `search:` section."""

    objective: str
    """slo_throughput | capacity | pareto."""
    space: tuple[ParamSpec, ...]
    """The engine args searched over."""
    constraints: tuple[Constraint, ...] = ()
    sampler: str = "tpe"
    """tpe | gp | nsgaii | random | grid (default: tpe; nsgaii for pareto)."""
    n_trials: int | None = None
    """Trials to finish (COMPLETE, PRUNED, or FAIL after retries); the baseline counts as one."""
    timeout_s: float | None = None
    """Stop asking new trials after this many seconds of this run."""
    parallelism: int = 1
    """Trials asked per batch and handed to the evaluator together."""
    seed: int | None = 0
    storage: str | None = None
    """SQLAlchemy URL; default sqlite:///OUT/study.db."""
    study_name: str | None = None
    """Default: "<sweep name>-search"."""
    slo: SloSpec | None = None
    """Default: the sweep spec's top-level `slo`."""
    rate: float | None = None
    """Request rate (req/s) of slo_throughput and pareto trials."""
    capacity: CapacitySpec | None = None
    metric: str = "request_goodput"
    """Throughput metric maximised by slo_throughput and pareto."""
    latency_metric: str = "p99_e2el_ms"
    """Latency metric minimised by pareto."""
    baseline: bool = True
    """Enqueue vLLM's defaults (no overrides) as the first trial."""
    heartbeat_interval_s: int = 10
    grace_period_s: int = 30
    """A RUNNING trial without a heartbeat for this long belongs to a dead controller and is retried."""
    max_retry: int = 2
    """Retries of a trial whose controller died."""
    max_duplicate_asks: int = 50
    """Consecutive already-tried configs proposed before the space counts as exhausted."""

    @property
    def directions(self) -> list[str]:
        """Optuna study directions for the objective."""
        return ["maximize", "minimize"] if self.objective == "pareto" else ["maximize"]


def _conditions(raw: Any, where: str) -> tuple[tuple[str, Any], ...]:
    if isinstance(raw, str):
        return ((raw, True),)
    if isinstance(raw, Mapping):
        return tuple(sorted(raw.items()))
    raise SpecError(f"{where} ({raw!r}) must be a bool parameter name or a mapping {{param: value}}")


def _parse_param(name: str, raw: Any) -> ParamSpec:
    where = f"search.space.{name}"
    if isinstance(raw, list):  # shorthand: a list of choices
        raw = {"type": "categorical", "choices": raw}
    raw = dict(_check_keys(raw, ParamSpec, where))
    raw.pop("name", None)
    kind = raw.get("type", "categorical" if "choices" in raw else "int")
    if kind not in ("int", "float", "categorical", "bool"):
        raise SpecError(f"{where}.type ({kind!r}) must be one of int, float, categorical, bool")
    spec = ParamSpec(
        name=name,
        type=kind,
        low=raw.get("low"),
        high=raw.get("high"),
        log=bool(raw.get("log", False)),
        step=raw.get("step"),
        choices=tuple(raw.get("choices", ())),
        when=_conditions(raw["when"], f"{where}.when") if "when" in raw else (),
        grid=tuple(raw.get("grid", ())),
    )
    _validate_param(spec, where)
    return spec


def _validate_param(p: ParamSpec, where: str) -> None:
    if p.type in ("int", "float"):
        if p.low is None or p.high is None:
            raise SpecError(f"{where}: a {p.type} parameter needs `low` and `high`")
        if p.high < p.low:
            raise SpecError(f"{where}: high ({p.high}) is below low ({p.low}); swap them")
        if p.log and p.step is not None:
            raise SpecError(f"{where}: `log` and `step` cannot be combined (Optuna's rule); drop one")
        if p.log and p.low <= 0:
            raise SpecError(f"{where}: a log-scale parameter needs low > 0, got {p.low}")
        if p.type == "int" and any(isinstance(v, float) for v in (p.low, p.high, p.step)):
            raise SpecError(f"{where}: an int parameter needs int low/high/step, got {p.low}/{p.high}/{p.step}")
    elif p.type == "categorical" and not p.choices:
        raise SpecError(f"{where}: a categorical parameter needs a non-empty `choices` list")


_RULE = re.compile(r"^\s*([A-Za-z_][\w-]*|-?[\d.]+)\s*(<=|>=|==|!=|<|>)\s*([A-Za-z_][\w-]*|-?[\d.]+)\s*$")
_CONSTRAINT_KEYS = ("rule", "left", "op", "right", "unless", "when")


def _operand(text: str) -> Any:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text.replace("-", "_")


def _parse_constraint(raw: Any, i: int) -> Constraint:
    where = f"search.constraints[{i}]"
    if not isinstance(raw, Mapping) or set(raw) - set(_CONSTRAINT_KEYS):
        bad = sorted(set(raw) - set(_CONSTRAINT_KEYS)) if isinstance(raw, Mapping) else raw
        raise SpecError(f"{where}: unknown key(s) {bad}; valid keys are {list(_CONSTRAINT_KEYS)}")
    raw = dict(raw)
    if "rule" in raw:
        m = _RULE.match(str(raw.pop("rule")))
        if not m:
            raise SpecError(
                f"{where}.rule must read '<arg or number> <op> <arg or number>', "
                "e.g. 'max_num_batched_tokens >= max_model_len'"
            )
        raw.update(left=_operand(m.group(1)), op=m.group(2), right=_operand(m.group(3)))
    for key in ("left", "op", "right"):
        if key not in raw:
            raise SpecError(
                f"{where} needs `rule` (e.g. 'max_num_batched_tokens >= max_model_len') or "
                f"left/op/right; `{key}` is missing"
            )
    if raw["op"] not in _OPS:
        raise SpecError(f"{where}.op ({raw['op']!r}) must be one of {list(_OPS)}")
    cond = {k: _conditions(raw[k], f"{where}.{k}") for k in ("unless", "when") if k in raw}
    return Constraint(left=raw["left"], op=raw["op"], right=raw["right"], **cond)


def _parse_slo(raw: Any, where: str) -> SloSpec:
    raw = _check_keys(raw, SloSpec, where)
    values = {k: _positive(v, f"{where}.{k}") for k, v in raw.items() if v is not None}
    slo = SloSpec(**values)
    if not slo.goodput():
        raise SpecError(f"{where}: give at least one of ttft_ms, tpot_ms, e2el_ms")
    if not 0 < slo.attainment <= 1:
        raise SpecError(f"{where}.attainment ({slo.attainment}) must be in (0, 1], e.g. 0.9 for 90 % of requests")
    return slo


def _parse_capacity(raw: Any) -> CapacitySpec:
    raw = dict(_check_keys(raw, CapacitySpec, "search.capacity"))
    if isinstance(raw.get("rate"), list):
        raw["low"], raw["high"] = raw.pop("rate")
    if "low" not in raw or "high" not in raw:
        raise SpecError("search.capacity needs `low` and `high` request rates (req/s), e.g. low: 1, high: 64")
    cap = CapacitySpec(**{k: _positive(v, f"search.capacity.{k}") for k, v in raw.items()})
    if cap.high <= cap.low:
        raise SpecError(f"search.capacity: high ({cap.high}) must exceed low ({cap.low})")
    return cap


def parse_search_spec(
    raw: Any, *, base_engine_args: Mapping[str, Any] | None = None, top_level_slo: Any = None
) -> SearchSpec:
    """Validate a raw `search:` mapping.

    Args:
        raw: the mapping under `search:`.
        base_engine_args: the sweep's fixed engine args (constraints may refer to them).
        top_level_slo: the sweep's top-level `slo:` mapping, used when `search.slo` is absent.

    Raises:
        SpecError: one line naming the bad key/value and the fix.
    """
    raw = dict(_check_keys(raw, SearchSpec, "search"))
    objective = raw.get("objective")
    if objective not in OBJECTIVES:
        raise SpecError(f"search.objective ({objective!r}) must be one of {list(OBJECTIVES)}")
    space_raw = raw.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise SpecError("search.space must map engine-arg names to ranges, e.g. max_num_seqs: {low: 8, high: 256}")
    space = tuple(_parse_param(str(k), v) for k, v in space_raw.items())
    constraints = tuple(_parse_constraint(c, i) for i, c in enumerate(raw.get("constraints") or ()))
    slo_raw = raw.get("slo", top_level_slo)
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k not in ("space", "constraints", "slo", "capacity")}
    kwargs.setdefault("sampler", "nsgaii" if objective == "pareto" else "tpe")
    spec = SearchSpec(
        space=space,
        constraints=constraints,
        slo=_parse_slo(slo_raw, "search.slo") if slo_raw is not None else None,
        capacity=_parse_capacity(raw["capacity"]) if "capacity" in raw else None,
        **kwargs,
    )
    _validate_spec(spec, dict(base_engine_args or {}))
    return spec


def _validate_spec(spec: SearchSpec, base: dict[str, Any]) -> None:
    names = {p.name for p in spec.space}
    if len(names) != len(spec.space):
        raise SpecError("search.space names a parameter twice; keep one entry per engine arg")
    if spec.sampler not in SAMPLERS:
        raise SpecError(f"search.sampler ({spec.sampler!r}) must be one of {list(SAMPLERS)}")
    if spec.n_trials is None and spec.timeout_s is None:
        raise SpecError("search needs `n_trials` and/or `timeout_s` to know when to stop")
    if spec.n_trials is not None and (not isinstance(spec.n_trials, int) or spec.n_trials < 1):
        raise SpecError(f"search.n_trials ({spec.n_trials!r}) must be an int >= 1")
    if spec.timeout_s is not None:
        _positive(spec.timeout_s, "search.timeout_s")
    if not isinstance(spec.parallelism, int) or spec.parallelism < 1:
        raise SpecError(f"search.parallelism ({spec.parallelism!r}) must be an int >= 1")
    if spec.metric not in THROUGHPUT_METRICS:
        raise SpecError(f"search.metric ({spec.metric!r}) must be one of {list(THROUGHPUT_METRICS)}")
    if not spec.latency_metric.endswith("_ms"):
        raise SpecError(f"search.latency_metric ({spec.latency_metric!r}) must be a vLLM *_ms key, e.g. p99_e2el_ms")
    _validate_objective(spec)
    for p in spec.space:
        for cond, _ in p.when:
            if cond not in names:
                raise SpecError(f"search.space.{p.name}.when refers to {cond!r}, which is not in search.space")
    known = names | set(base)
    for i, c in enumerate(spec.constraints):
        for ref in (c.left, c.right, *(n for n, _ in (*c.unless, *c.when))):
            if isinstance(ref, str) and ref not in known:
                raise SpecError(
                    f"search.constraints[{i}] refers to {ref!r}, which is neither in search.space nor "
                    f"in engine_args; add it to engine_args (e.g. max_model_len: 4096)"
                )
    if spec.sampler == "grid":
        for p in spec.space:
            p.grid_values()


def _validate_objective(spec: SearchSpec) -> None:
    if spec.objective in ("slo_throughput", "capacity") and spec.slo is None:
        raise SpecError(
            f"search.objective {spec.objective} needs an SLO: add search.slo (or a top-level slo) "
            "with ttft_ms/tpot_ms/e2el_ms and attainment"
        )
    if spec.objective in ("slo_throughput", "pareto"):
        if spec.rate is None:
            raise SpecError(f"search.objective {spec.objective} needs `rate` (req/s) at which trials are measured")
        _positive(spec.rate, "search.rate")
    if spec.objective == "capacity" and spec.capacity is None:
        raise SpecError("search.objective capacity needs search.capacity: {low: ..., high: ..., tolerance: ...}")
