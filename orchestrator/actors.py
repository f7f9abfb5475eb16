"""The Ray actor that hosts one trial attempt, and the resources it declares.

One actor per attempt: its declared ``num_cpus`` (and memory, and one unit of the hardware resource for
real-hardware trials) is what keeps concurrent servers from oversubscribing a node. Killing the actor
(``ray.kill``, node loss, OOM) surfaces in the controller as ActorDiedError and the attempt is retried.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.runner import TrialContext, TrialResult, TrialRunner
from orchestrator.trials import Trial

NAMESPACE = "llm-emu-sweep"
"""Ray namespace of trial actors (named ``trial-<hash>-<attempt>`` so they can be found and killed)."""


@dataclass(frozen=True)
class ActorResources:
    """What one trial actor reserves on its node."""

    num_cpus: float = 2.0
    """Ray CPUs."""
    memory_bytes: int | None = None
    """Ray memory (None: not declared)."""
    hardware: str | None = None
    """Resource name needing one unit ("GPU" or custom) for real-hardware trials, else None."""

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``ActorClass.options``."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "max_restarts": 0}
        if self.memory_bytes:
            opts["memory"] = self.memory_bytes
        if self.hardware == "GPU":
            opts["num_gpus"] = 1
        elif self.hardware:
            opts["resources"] = {self.hardware: 1}
        return opts

    def demand(self) -> dict[str, float]:
        """The same request as a Ray resource dict (for feasibility checks)."""
        need: dict[str, float] = {"CPU": self.num_cpus}
        if self.memory_bytes:
            need["memory"] = float(self.memory_bytes)
        if self.hardware:
            need[self.hardware] = 1.0
        return need


def actor_name(trial_hash: str, attempt: int) -> str:
    """Name of the actor running ``attempt`` of a trial."""
    return f"trial-{trial_hash}-{attempt}"


class TrialActor:
    """Runs one attempt of one trial on whatever node Ray placed it (wrapped with ``ray.remote``)."""

    def __init__(self, runner: TrialRunner) -> None:
        from llm_emu.lifetime import guard_children

        self.runner = runner
        guard_children()  # stops our server if Ray kills us mid-trial (timeout, ray.kill, a killed driver)

    def node(self) -> str:
        """``<node id prefix>@<hostname>`` of this actor."""
        import ray

        return f"{ray.get_runtime_context().get_node_id()[:12]}@{socket.gethostname()}"

    def run(self, trial: Trial, ctx: TrialContext) -> TrialResult:
        """Run the attempt; exceptions propagate to the controller (as RayTaskError) for retry."""
        start = time.monotonic()
        rates = self.runner(trial, ctx)
        return TrialResult(
            trial_hash=trial.hash, status="ok", rates=tuple(rates), attempts=ctx.attempt + 1,
            node=self.node(), elapsed_s=time.monotonic() - start, log_path=str(ctx.log_file(trial)),
        )


def failed_result(trial: Trial, ctx: TrialContext, error: str, elapsed_s: float,
                  node: str | None = None) -> TrialResult:
    """The record of a trial whose last attempt failed."""
    return TrialResult(trial_hash=trial.hash, status="failed", error=error, attempts=ctx.attempt + 1,
                       node=node, elapsed_s=elapsed_s, log_path=str(ctx.log_file(trial)))

