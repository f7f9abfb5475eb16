"""The one spec for the whole YAML file: typed, validated at load, every error one line with ``file:line``.

A spec has one proposal source, a ``grid`` or a ``search`` section (typed in search.spec); everything else —
model, profile, clock, engine args, constraints, workload, SLO, resources — is shared by both. Example::

    name: chunked_prefill
    model: llama-3.1-8b
    profile: aic:h100_sxm
    engine_args: {max_model_len: 4096}
    grid:
      enable_chunked_prefill: [true, false]
      max_num_batched_tokens: [2048, 8192]
    workload: {dataset: sharegpt, num_prompts: 100, request_rates: [2, 8, inf]}
    slo: {ttft_ms: 500, tpot_ms: 50, attainment: 0.99}
    resources: {cpus_per_trial: 2, max_parallel: 1}

See docs/SWEEPS.md for every key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from llm_emu.errors import SpecError
from llm_emu.slo import SLOSpec
from llm_emu.yamlspec import Located, build, fail, load_located, load_located_file
from orchestrator.constraints import parse_rule, rule_names
from search.spec import SearchSpec, as_conditions, normalise_section, validate_search

# Flags the orchestrator sets itself: a spec must not override them.
RESERVED_ENGINE_ARGS = frozenset({"model", "host", "port", "served_model_name", "tokenizer", "profile"})


@dataclass(frozen=True)
class WorkloadSpec:
    """The load offered to every trial (one benchmark run per request rate)."""

    dataset: Literal["sharegpt", "random"] = "sharegpt"
    """Prompt source: ShareGPT conversations (offline copy) or random token prompts."""
    num_prompts: int = 200
    """Requests per benchmark run (per rate)."""
    request_rates: tuple[float, ...] = (math.inf,)
    """Offered request rates in req/s; ``inf`` sends everything at once."""
    burstiness: float = 1.0
    """Gamma shape of inter-arrival times (1.0 = Poisson, <1 burstier)."""
    seed: int = 0
    """Seed of the dataset sampling and arrival times (same seed = same requests for every trial)."""
    max_concurrency: int | None = None
    """Cap on in-flight requests (None: unbounded)."""
    random_input_len: int = 1024
    """dataset=random: prompt length in tokens."""
    random_output_len: int = 128
    """dataset=random: output length in tokens."""
    sharegpt_output_len: int | None = None
    """dataset=sharegpt: override the dataset's output lengths."""
    ignore_eos: bool = False
    """Generate exactly the requested output lengths."""


@dataclass(frozen=True)
class ResourcesSpec:
    """Where and how wide trials run."""

    cpus_per_trial: float = 2.0
    """Ray CPUs each trial actor declares. In wall-clock time an emulated server is an API-server process plus
    an EngineCore process plus the benchmark client: about 1.5-2 busy cores, so 2 keeps concurrent trials from
    slowing each other down (which would distort the measured latencies). Virtual-time trials use one core
    while they compute and their results do not depend on load, so they may pack densely (e.g. 0.5)."""
    memory_gb_per_trial: float | None = 2.0
    """Ray memory each trial declares (an emulated server needs ~1.3 GB); None: do not declare."""
    max_parallel: int | None = None
    """Most trials in flight at once (None: as many as the cluster's resources fit)."""
    num_cpus: int | None = None
    """CPUs of the local Ray cluster started when no --address is given (None: all cores)."""
    hardware_resource: str = "GPU"
    """Ray resource that kind=real trials request one unit of ("GPU", or a custom resource name)."""
    trial_timeout_s: float | None = None
    """Give up on a trial attempt after this long (None: no limit)."""


@dataclass(frozen=True)
class ConstraintSpec:
    """A user pruning rule: a comparison every config must satisfy (only those matching ``when``)."""

    rule: str
    """``<arg or number> <op> <arg or number>``, op one of < <= > >= == !=, e.g.
    ``max_num_batched_tokens >= max_num_seqs``."""
    when: dict[str, Any] | str | None = None
    """Apply only to configs whose engine args equal all of these values (a bare name means ``{name: true}``)."""
    unless: dict[str, Any] | str | None = None
    """Do not apply to configs whose engine args equal all of these values (a bare name: ``{name: true}``)."""
    reason: str | None = None
    """Recorded with every config the rule prunes (default: the rule)."""


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: one trial (one server) per grid point, one benchmark run per request rate."""

    name: str
    """Sweep name (default output dir: runs/<name>)."""
    model: str
    """Shipped model name (llm_emu/data/models/<name>), model directory, or HF id."""
    profile: str | None = None
    """Latency profile of emulated servers: a pack directory, ``aic:<gpu>`` or ``formula:...``."""
    kind: Literal["emulated", "real"] = "emulated"
    """"emulated": llm-emu serve; "real": vLLM on real hardware (needs the hardware resource)."""
    clock: Literal["wall", "virtual"] = "wall"
    """"wall": a server process measured in real time; "virtual": vLLM's engine in-process on a virtual clock
    (emulated only; deterministic, independent of machine load, many times faster)."""
    host_model: str = "default"
    """Virtual time only: host CPU time charged per step and request: "default" (the shipped model), "none"
    (pure device time) or a JSON file made by bench/host_model.py."""
    engine_args: dict[str, Any] = field(default_factory=dict)
    """Base ``vllm serve`` flags shared by all trials, e.g. {max_model_len: 4096}."""
    grid: dict[str, Any] = field(default_factory=dict)
    """Engine arg -> list of values; trials are the cartesian product."""
    constraints: tuple[ConstraintSpec, ...] = ()
    """Extra pruning rules for grid and search configs (built-in ones always apply)."""
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    """The offered load."""
    slo: SLOSpec | None = None
    """SLOs for goodput and attainment (None: no goodput)."""
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    """Ray resources and parallelism."""
    output: str | None = None
    """Output directory (default runs/<name>; --output overrides)."""
    retries: int = 1
    """Extra attempts for a failed trial before recording it as failed."""
    search: SearchSpec | None = None
    """Optional Optuna search: the proposal source instead of ``grid`` (see search.spec)."""
    _doc: Located | None = field(default=None, compare=False, repr=False)
    """Source positions, for messages raised after load."""

    def where(self, *path: str | int) -> str:
        """``file:line`` of a key path (e.g. ``spec.where("grid", "max_num_seqs")``)."""
        return self._doc.where(path) if self._doc else "<spec>"

    @property
    def source_path(self) -> str | None:
        """The spec file it was loaded from (None for specs built from strings)."""
        if self._doc is None or not Path(self._doc.source).is_file():
            return None
        return self._doc.source

    def output_dir(self) -> Path:
        """Where results go unless --output says otherwise."""
        return Path(self.output) if self.output else Path("runs") / self.name


def _normalize_args(doc: Located, path: tuple[str, ...], args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        name = key.replace("-", "_").lstrip("_")
        if name in RESERVED_ENGINE_ARGS:
            raise fail(doc, (*path, key), f"{name!r} is set by the orchestrator; remove it from {path[-1]}")
        if name in out:
            raise fail(doc, (*path, key), f"{name!r} given twice (as dashes and underscores)")
        out[name] = value
    return out


def _check_grid(doc: Located, spec: SweepSpec, engine: dict[str, Any]) -> None:
    for key, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise fail(doc, ("grid", key), f"expected a non-empty list of values, got {values!r}")
        for i, v in enumerate(values):
            if isinstance(v, (list, dict)):
                raise fail(doc, ("grid", key, i), f"grid values must be scalars (bool, number, string, null), "
                                                  f"got {v!r}")
        if key.replace("-", "_") in engine:
            raise fail(doc, ("grid", key), f"{key!r} is also in engine_args; keep it in one place")


def _check_search(doc: Located, spec: SweepSpec, engine: dict[str, Any]) -> SearchSpec | None:
    if spec.search is None:
        return None
    if spec.grid:
        raise fail(doc, ("search",), "a spec has one proposal source: `grid:` or `search:`; remove one")
    search = validate_search(doc, ("search",), spec.search, has_slo=spec.slo is not None)
    raw_names = list(spec.search.space)
    _normalize_args(doc, ("search", "space"), dict.fromkeys(raw_names))
    for raw, name in zip(raw_names, search.space, strict=True):
        if name in engine:
            raise fail(doc, ("search", "space", raw), f"{name!r} is also in engine_args; keep it in one place")
    return search


def _check_scalars(doc: Located, spec: SweepSpec) -> None:
    w, r = spec.workload, spec.resources
    checks: list[tuple[bool, tuple[str, ...], str]] = [
        (w.num_prompts >= 1, ("workload", "num_prompts"), f"must be >= 1, got {w.num_prompts}"),
        (bool(w.request_rates), ("workload", "request_rates"), "give at least one rate"),
        (all(x > 0 for x in w.request_rates), ("workload", "request_rates"), "rates must be > 0 (or inf)"),
        (w.burstiness > 0, ("workload", "burstiness"), f"must be > 0, got {w.burstiness}"),
        (r.cpus_per_trial > 0, ("resources", "cpus_per_trial"), f"must be > 0, got {r.cpus_per_trial}"),
        ((r.max_parallel or 1) >= 1, ("resources", "max_parallel"), f"must be >= 1, got {r.max_parallel}"),
        (spec.retries >= 0, ("retries",), f"must be >= 0, got {spec.retries}"),
        (spec.kind == "real" or bool(spec.profile), ("profile",),
         "emulated sweeps need a profile (e.g. profile: aic:h100_sxm); or set kind: real"),
        (spec.kind == "emulated" or spec.clock == "wall", ("clock",),
         "virtual time emulates a profile; kind: real runs real vLLM in wall-clock time only (clock: wall)"),
    ]
    if spec.slo is not None:
        a = spec.slo.attainment
        checks.append((0 < a <= 1, ("slo", "attainment"), f"must be in (0, 1], got {a}"))
        checks.append((bool(spec.slo.goodput()), ("slo",), "give at least one of ttft_ms, tpot_ms, e2el_ms"))
    for ok, path, message in checks:
        if not ok:
            raise fail(doc, path, message)


def _check_constraints(doc: Located, spec: SweepSpec, settable: set[str]) -> tuple[ConstraintSpec, ...]:
    out = []
    for i, c in enumerate(spec.constraints):
        try:
            names = rule_names(parse_rule(c.rule))
        except SpecError as exc:
            raise fail(doc, ("constraints", i, "rule"), str(exc)) from None
        when, unless = as_conditions(c.when), as_conditions(c.unless)
        for key, refs in (("rule", names), ("when", list(when)), ("unless", list(unless))):
            for name in refs:
                if name not in settable:
                    raise fail(doc, ("constraints", i, key), f"refers to {name!r}, which no config sets (not in "
                                                             "engine_args, grid or search.space); add it to "
                                                             "engine_args, e.g. max_model_len: 4096")
        out.append(replace(c, when=when or None, unless=unless or None))
    return tuple(out)


def _validate(doc: Located, spec: SweepSpec) -> SweepSpec:
    engine = _normalize_args(doc, ("engine_args",), spec.engine_args)
    _check_grid(doc, spec, engine)
    grid = _normalize_args(doc, ("grid",), spec.grid)
    search = _check_search(doc, spec, engine)
    _check_scalars(doc, spec)
    settable = set(engine) | set(grid) | set(search.space if search else ())
    constraints = _check_constraints(doc, spec, settable)
    return replace(spec, engine_args=engine, grid=grid, search=search, constraints=constraints, _doc=doc)


def spec_from_located(doc: Located) -> SweepSpec:
    """Build and validate a spec from a parsed YAML document."""
    data = doc.data
    if isinstance(data, dict) and "search" in data:
        data = {**data, "search": normalise_section(data["search"])}
    return _validate(doc, build(doc, (), data, SweepSpec))


def load_spec(path: str | Path) -> SweepSpec:
    """Load and validate a spec file; raises SpecError (one line, ``file:line``) on any problem."""
    return spec_from_located(load_located_file(path))


def loads_spec(text: str, source: str = "<string>") -> SweepSpec:
    """Like load_spec, from a YAML string (tests, generated specs)."""
    return spec_from_located(load_located(text, source))
