"""Trials: one server config each, keyed by a content hash; proposals become trials here, and are pruned here."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from llm_emu.flags import render_flags
from llm_emu.slo import SLOSpec
from orchestrator.constraints import prune_reason, user_constraints
from orchestrator.spec import SweepSpec, WorkloadSpec
from search.evaluator import TrialRequest
from search.grid import GridSource

HASH_CHARS = 16
"""Hex digits of sha256 kept in keys and file names (collisions: negligible at sweep scale)."""


@dataclass(frozen=True)
class Trial:
    """One server configuration, benchmarked at every request rate of the workload."""

    hash: str
    """Content hash of everything that determines the results (model, profile, engine args, workload, SLO,
    clock and host model)."""
    index: int
    """The proposal's number: grid position or Optuna trial number (for display only)."""
    kind: str
    """"emulated" or "real"."""
    model: str
    """Model argument as written in the spec."""
    profile: str | None
    """Profile argument (emulated) or None."""
    engine_args: tuple[tuple[str, Any], ...]
    """Effective engine args: base engine_args + this grid point, sorted by name."""
    grid_point: tuple[tuple[str, Any], ...]
    """Only the varied values (grid point or searched params), in order (what distinguishes it from siblings)."""
    workload: WorkloadSpec
    """The load; one benchmark run per ``workload.request_rates`` entry."""
    slo: SLOSpec | None = None
    """SLOs for goodput/attainment."""
    profile_id: str | None = None
    """Provenance of the profile: its name, plus a digest of every file for pack directories."""
    clock: Literal["wall", "virtual"] = "wall"
    """Which clock measures it: a server process in real time, or vLLM's engine on a virtual clock."""
    host_model: str | None = None
    """Virtual time: the host model ("default", "none" or a file); None in wall-clock time."""

    @property
    def engine(self) -> dict[str, Any]:
        """Effective engine args as a dict."""
        return dict(self.engine_args)

    @property
    def label(self) -> str:
        """Short human label from the grid values, e.g. ``enable_chunked_prefill=true max_num_seqs=64``."""
        return " ".join(f"{k}={_show(v)}" for k, v in self.grid_point) or "base"

    def vllm_flags(self) -> tuple[str, ...]:
        """The engine args as ``vllm serve`` flags (see llm_emu.flags.render_flags)."""
        return tuple(render_flags(self.engine))


@dataclass(frozen=True)
class PrunedTrial:
    """A grid point not run, and why."""

    index: int
    grid_point: tuple[tuple[str, Any], ...]
    reason: str

    @property
    def label(self) -> str:
        """Same format as Trial.label."""
        return " ".join(f"{k}={_show(v)}" for k, v in self.grid_point)


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, type(None))) else str(v)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no spaces, inf as "inf"), shortened."""
    text = json.dumps(_jsonable(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def profile_id(profile: str | None) -> str | None:
    """The profile string, plus a digest of every file of the pack when it names a pack directory.

    Any change to a pack (``steps.parquet`` fixed in place, a new ``requests.parquet``) changes the trial keys
    of every trial using it, so those trials run again.
    """
    if profile is None:
        return None
    root = Path(profile)
    if not (root / "profile.json").is_file():
        return profile
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{profile}@{digest.hexdigest()[:12]}"


def model_max_len(model: str) -> int | None:
    """Context length from the model's config.json (shipped, model dir or cached HF id), else None."""
    from llm_emu.models import load_model_config

    value = load_model_config(model).get("max_position_embeddings")
    return int(value) if isinstance(value, (int, float)) else None


def host_digest(spec: SweepSpec, clock: str) -> dict[str, Any] | None:
    """The host model's numbers for virtual trials (part of their key), None for wall-clock trials."""
    if clock != "virtual":
        return None
    from llm_emu.virtual.host import resolve_host

    return asdict(resolve_host(spec.host_model))


class TrialFactory:
    """Turns a spec's proposals (TrialRequests) into keyed Trials and prunes them; file reads done once."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.rules = user_constraints(spec.constraints)
        self.max_len = model_max_len(spec.model)
        self.pid = profile_id(spec.profile) if spec.kind == "emulated" else None
        self._hosts: dict[str, dict[str, Any] | None] = {}

    def prune_reason(self, request: TrialRequest) -> str | None:
        """Why the request's config is not run (built-in rules mirroring vLLM, then the spec's), or None."""
        return prune_reason(request.engine_args, self.max_len, self.rules)

    def trial(self, request: TrialRequest) -> Trial:
        """The Trial a request stands for: the spec's model, profile, workload (at the request's rates), SLO."""
        spec = self.spec
        clock = request.clock or spec.clock
        if clock not in self._hosts:
            self._hosts[clock] = host_digest(spec, clock)
        workload = replace(spec.workload, request_rates=tuple(float(r) for r in request.rates))
        engine_args = dict(request.engine_args)
        key = {
            "kind": spec.kind, "model": spec.model, "profile": self.pid, "engine_args": engine_args,
            "workload": asdict(workload), "slo": asdict(spec.slo) if spec.slo else None, "clock": clock,
            "host": self._hosts[clock],
        }
        return Trial(
            hash=content_hash(key), index=request.number, kind=spec.kind, model=spec.model,
            profile=spec.profile if spec.kind == "emulated" else None,
            engine_args=tuple(sorted(engine_args.items())), grid_point=tuple(request.overrides.items()),
            workload=workload, slo=spec.slo, profile_id=self.pid, clock=clock,
            host_model=spec.host_model if clock == "virtual" else None,
        )


def grid_source(spec: SweepSpec) -> GridSource:
    """The spec's grid as a proposal source."""
    return GridSource(spec.engine_args, spec.grid, spec.workload.request_rates)


def expand(spec: SweepSpec) -> tuple[list[Trial], list[PrunedTrial]]:
    """All grid points of ``spec``: those to run (deduplicated by hash) and those pruned, with reasons."""
    factory = TrialFactory(spec)
    trials: list[Trial] = []
    pruned: list[PrunedTrial] = []
    seen: set[str] = set()
    for request in grid_source(spec).preview():
        reason = factory.prune_reason(request)
        if reason:
            pruned.append(PrunedTrial(request.number, tuple(request.overrides.items()), reason))
            continue
        trial = factory.trial(request)
        if trial.hash not in seen:  # duplicate grid values would only run the same server twice
            seen.add(trial.hash)
            trials.append(trial)
    return trials, pruned
