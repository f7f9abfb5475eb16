"""Schedule trials on Ray actors: bounded parallelism, retries, timeouts, results written as they finish.

The controller is the only writer of results: actors return typed TrialResults, the controller writes each
trial's parquet atomically the moment it finishes, so a killed controller loses at most the trials in
flight (and never leaves a half-written or duplicated row).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.lifetime import guard_children
from llm_emu.pythonpath import child_pythonpath
from orchestrator.actors import NAMESPACE, ActorResources, TrialActor, actor_name, failed_result
from orchestrator.results import ResultStore
from orchestrator.runner import TrialContext, TrialResult, TrialRunner
from orchestrator.trials import Trial


class ResourceError(EmuError):
    """The Ray cluster cannot host a trial at all (so waiting would hang forever)."""


@dataclass(frozen=True)
class ControllerOptions:
    """How to run the trials."""

    out_dir: str
    """Sweep output directory (logs and raw benchmark JSON land under it)."""
    resources: ActorResources = field(default_factory=ActorResources)
    """What each trial actor reserves."""
    max_parallel: int | None = None
    """Most attempts in flight (None: as many as the cluster fits)."""
    retries: int = 1
    """Extra attempts after a failure."""
    trial_timeout_s: float | None = None
    """Kill an attempt after this long (None: never)."""
    startup_timeout_s: float = 600.0
    """Server health-check timeout passed to each attempt."""
    poll_s: float = 0.5
    """How often the controller wakes up to check timeouts."""
    env_vars: dict[str, str] = field(default_factory=dict)
    """Extra environment of trial actors (virtual time: the emulator's vLLM platform, in-process engine)."""
    reuse_actors: bool = False
    """Keep an actor whose attempt succeeded for the next trial (virtual time: vLLM is imported once per
    actor, not once per trial). A failed or timed-out attempt's actor is always killed."""


def runtime_env() -> dict[str, Any]:
    """Ray runtime_env making this llm-emu importable in workers (a source tree too, when not installed)."""
    path = child_pythonpath()
    return {"env_vars": {"PYTHONPATH": path}} if path else {}


def connect(address: str | None, num_cpus: int | None) -> bool:
    """Connect to Ray: reuse an initialised session, join ``address``, or start a local cluster.

    Returns:
        True when this call started Ray (the caller should ``ray.shutdown()``).
    """
    import ray

    if ray.is_initialized():
        return False
    # Before ray.init: a local cluster inherits this process's owner tag, so its agents, workers and the
    # servers they start are killed when the controller dies, however it dies (see llm_emu.lifetime).
    guard_children()
    kwargs: dict[str, Any] = {"namespace": NAMESPACE, "runtime_env": runtime_env(), "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    return True


def _node_capacity(node: dict[str, Any], need: dict[str, float]) -> int:
    have = node.get("Resources", {})
    return int(min(math.floor(have.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0))


def check_cluster(resources: ActorResources) -> int:
    """How many trial actors the alive nodes fit at once; ResourceError (never a hang) if none fits."""
    import ray

    need = resources.demand()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    capacity = sum(_node_capacity(n, need) for n in nodes)
    if capacity > 0:
        return capacity
    totals = ray.cluster_resources()
    have = ", ".join(f"{k}={v:g}" for k, v in sorted(totals.items()) if "node:" not in k)
    if resources.hardware and totals.get(resources.hardware, 0) < 1:
        raise ResourceError(
            f"kind: real trials need one {resources.hardware!r} per trial but the Ray cluster has none "
            f"({have}); join a node that has it (ray start --num-gpus N, or --resources "
            f"'{{\"{resources.hardware}\": N}}') or set resources.hardware_resource")
    raise ResourceError(
        f"no Ray node can host a trial needing {need} (cluster: {have}); lower resources.cpus_per_trial "
        f"/ memory_gb_per_trial or add bigger nodes")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _last_line(text: str) -> str:
    """The last non-empty line of a (possibly multi-line, colourised) Ray error: usually the root cause."""
    lines = [ln.strip() for ln in _ANSI.sub("", text).splitlines() if ln.strip().strip("^")]
    return lines[-1][:500] if lines else ""


def _error_text(exc: BaseException) -> str:
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause if exc.cause is not None else exc
        return f"{type(cause).__name__}: {_last_line(str(cause))}"
    if isinstance(exc, (rex.ActorDiedError, rex.RayActorError)):
        return f"actor died (killed, out of memory, node lost or failed to start): {_last_line(str(exc))}"
    return f"{type(exc).__name__}: {_last_line(str(exc))}"


@dataclass
class _Attempt:
    trial: Trial
    ctx: TrialContext
    actor: Any
    started: float
    killed: bool = False


class Controller:
    """Runs trials on Ray actors; call ``run`` once per batch, ``close`` at the end (or use it as a context)."""

    def __init__(self, runner: TrialRunner, store: ResultStore, options: ControllerOptions,
                 on_result: Callable[[Trial, TrialResult], None] | None = None) -> None:
        self.runner, self.store, self.opts, self.on_result = runner, store, options, on_result
        self._inflight: dict[Any, _Attempt] = {}
        self._idle: list[Any] = []
        """Actors kept for reuse (``reuse_actors``)."""
        self._errors: dict[str, list[str]] = {}
        """Trial hash -> errors of its failed attempts so far."""

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the actors kept for reuse."""
        import ray

        while self._idle:
            ray.kill(self._idle.pop())

    def run(self, trials: Sequence[Trial]) -> list[TrialResult]:
        """Run every trial (retrying failures) and return their results in completion order."""
        import ray

        capacity = check_cluster(self.opts.resources)
        limit = min(capacity, self.opts.max_parallel or capacity)
        actor_cls = ray.remote(TrialActor)
        pending: deque[tuple[Trial, int]] = deque((t, 0) for t in trials)
        results: list[TrialResult] = []
        try:
            while pending or self._inflight:
                while pending and len(self._inflight) < limit:
                    self._launch(actor_cls, *pending.popleft())
                ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=self.opts.poll_s)
                self._kill_overdue()
                for ref in ready:
                    result = self._collect(ref, pending)
                    if result is not None:
                        results.append(result)
        finally:
            for attempt in self._inflight.values():
                ray.kill(attempt.actor)
            self._inflight.clear()
        return results

    def _actor(self, actor_cls: Any, trial: Trial, attempt: int) -> Any:
        if self._idle:
            return self._idle.pop()
        opts = self.opts.resources.options()
        if self.opts.env_vars:
            opts["runtime_env"] = {"env_vars": {**runtime_env()["env_vars"], **self.opts.env_vars}}
        return actor_cls.options(name=actor_name(trial.hash, attempt), namespace=NAMESPACE, **opts).remote(
            self.runner)

    def _launch(self, actor_cls: Any, trial: Trial, attempt: int) -> None:
        ctx = TrialContext(out_dir=self.opts.out_dir, attempt=attempt,
                           startup_timeout_s=self.opts.startup_timeout_s)
        actor = self._actor(actor_cls, trial, attempt)
        self._inflight[actor.run.remote(trial, ctx)] = _Attempt(trial, ctx, actor, time.monotonic())

    def _kill_overdue(self) -> None:
        import ray

        limit = self.opts.trial_timeout_s
        if limit is None:
            return
        for attempt in self._inflight.values():
            if time.monotonic() - attempt.started > limit and not attempt.killed:
                attempt.killed = True
                ray.kill(attempt.actor)  # its ref then raises ActorDiedError: retried like any failure

    def _collect(self, ref: Any, pending: deque[tuple[Trial, int]]) -> TrialResult | None:
        import ray

        attempt = self._inflight.pop(ref)
        trial, ctx = attempt.trial, attempt.ctx
        errors = self._errors.setdefault(trial.hash, [])
        reuse = False
        try:
            result: TrialResult = ray.get(ref)
            reuse = self.opts.reuse_actors
        except Exception as exc:
            error = _error_text(exc)
            if attempt.killed:
                error = f"timed out after {self.opts.trial_timeout_s:g} s (resources.trial_timeout_s)"
            errors.append(f"attempt {ctx.attempt + 1}: {error}")
            if ctx.attempt < self.opts.retries:
                pending.appendleft((trial, ctx.attempt + 1))
                return None
            result = failed_result(trial, ctx, error, time.monotonic() - attempt.started)
        finally:
            if reuse:
                self._idle.append(attempt.actor)
            else:
                ray.kill(attempt.actor)  # frees its resources now rather than at garbage collection
        result = replace(result, attempt_errors=tuple(self._errors.pop(trial.hash, ())))
        self.store.write(trial, result)
        if self.on_result:
            self.on_result(trial, result)
        return result
