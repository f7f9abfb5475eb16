"""Expand a spec's grid into trials (one server config each), prune invalid ones, key them by content hash."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_emu.flags import render_flags
from orchestrator.constraints import prune_reason, user_constraints
from orchestrator.spec import SLOSpec, SweepSpec, WorkloadSpec

HASH_CHARS = 16
"""Hex digits of sha256 kept in keys and file names (collisions: negligible at sweep scale)."""


@dataclass(frozen=True)
class Trial:
    """One server configuration, benchmarked at every request rate of the workload."""

    hash: str
    """Content hash of everything that determines the results (model, profile, engine args, workload, SLO)."""
    index: int
    """Position in grid order (for display only)."""
    kind: str
    """"emulated" or "real"."""
    model: str
    """Model argument as written in the spec."""
    profile: str | None
    """Profile argument (emulated) or None."""
    engine_args: tuple[tuple[str, Any], ...]
    """Effective engine args: base engine_args + this grid point, sorted by name."""
    grid_point: tuple[tuple[str, Any], ...]
    """Only the grid values of this trial, in grid order (what distinguishes it from its siblings)."""
    workload: WorkloadSpec
    """The load; one benchmark run per ``workload.request_rates`` entry."""
    slo: SLOSpec | None = None
    """SLOs for goodput/attainment."""
    profile_id: str | None = None
    """Provenance of the profile: its name, plus a digest of profile.json for pack directories."""

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
    """The profile string, plus a digest of ``profile.json`` when it names a pack directory."""
    if profile is None:
        return None
    meta = Path(profile) / "profile.json"
    if meta.is_file():
        return f"{profile}@{hashlib.sha256(meta.read_bytes()).hexdigest()[:12]}"
    return profile


def model_max_len(model: str) -> int | None:
    """Context length from a shipped model's (or model dir's) config.json, else None."""
    from llm_emu.models import MODELS_DIR

    for d in (MODELS_DIR / model, Path(model)):
        cfg = d / "config.json"
        if cfg.is_file():
            value = json.loads(cfg.read_text()).get("max_position_embeddings")
            return int(value) if value else None
    return None


def make_trial(spec: SweepSpec, *, index: int, engine_args: dict[str, Any], grid_point: dict[str, Any],
               workload: WorkloadSpec | None = None, slo: SLOSpec | None = None,
               pid: str | None = None) -> Trial:
    """A Trial of ``spec``'s model/profile/kind with the given full engine config (grid or search point).

    Args:
        spec: the sweep (kind, model, profile; default workload and SLO).
        index: display position.
        engine_args: the full effective engine args.
        grid_point: the varied part of ``engine_args`` (for labels).
        workload: overrides ``spec.workload`` (e.g. other rates for a search trial).
        slo: overrides ``spec.slo``.
        pid: the profile's provenance id (``profile_id(spec.profile)``; computed once by callers).
    """
    workload = workload or spec.workload
    slo = slo if slo is not None else spec.slo
    key = {
        "kind": spec.kind, "model": spec.model, "profile": pid, "engine_args": engine_args,
        "workload": asdict(workload), "slo": asdict(slo) if slo else None,
    }
    return Trial(
        hash=content_hash(key), index=index, kind=spec.kind, model=spec.model,
        profile=spec.profile if spec.kind == "emulated" else None,
        engine_args=tuple(sorted(engine_args.items())), grid_point=tuple(grid_point.items()),
        workload=workload, slo=slo, profile_id=pid,
    )


def expand(spec: SweepSpec) -> tuple[list[Trial], list[PrunedTrial]]:
    """All grid points of ``spec``: those to run (deduplicated by hash) and those pruned, with reasons."""
    keys = list(spec.grid)
    combos = itertools.product(*(spec.grid[k] for k in keys))
    points = [dict(zip(keys, values, strict=True)) for values in combos]
    rules = user_constraints(spec.constraints)
    max_len = model_max_len(spec.model)
    pid = profile_id(spec.profile) if spec.kind == "emulated" else None
    trials: list[Trial] = []
    pruned: list[PrunedTrial] = []
    seen: set[str] = set()
    for i, point in enumerate(points):
        reason = prune_reason({**spec.engine_args, **point}, max_len, rules)
        if reason:
            pruned.append(PrunedTrial(i, tuple(point.items()), reason))
            continue
        trial = make_trial(spec, index=i, engine_args={**spec.engine_args, **point}, grid_point=point, pid=pid)
        if trial.hash not in seen:  # duplicate grid values would only run the same server twice
            seen.add(trial.hash)
            trials.append(trial)
    return trials, pruned
