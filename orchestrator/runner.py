"""What one trial does: serve its config in its clock, benchmark every request rate, return typed results.

A runner is any picklable callable ``(trial, ctx) -> tuple[RateResult, ...]`` that raises on failure; the
controller ships it to the trial's Ray actor. ``ServerRunner`` is the real one; tests inject fakes
(orchestrator.testing) so the Ray machinery can be exercised without starting vLLM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from llm_emu.slo import slo_attainment
from orchestrator.trials import Trial

if TYPE_CHECKING:
    from llm_emu.measure import BenchRun, MeasureLoop


@dataclass(frozen=True)
class TrialContext:
    """Where an attempt of a trial keeps its files, and which attempt it is."""

    out_dir: str
    """The sweep's output directory (must be visible to the node for logs to land there)."""
    attempt: int
    """0 for the first attempt, 1 for the first retry, ..."""
    startup_timeout_s: float = 600.0
    """How long a server may take to become healthy."""

    @property
    def log_dir(self) -> Path:
        """Server logs: OUT/logs (one <hash>.<attempt>.log per attempt)."""
        return Path(self.out_dir) / "logs"

    def log_file(self, trial: Trial) -> Path:
        """The server log file of ``trial`` for this attempt."""
        return self.log_dir / f"{trial.hash}.{self.attempt}.log"

    def raw_dir(self, trial: Trial, rate: float) -> Path:
        """Where vLLM's benchmark JSON for one rate goes: OUT/raw/<hash>/rate-<rate>."""
        return Path(self.out_dir) / "raw" / trial.hash / f"rate-{rate_name(rate)}"


def rate_name(rate: float) -> str:
    """``inf`` or the rate without a trailing ``.0``."""
    return "inf" if math.isinf(rate) else f"{rate:g}"


@dataclass(frozen=True)
class RateResult:
    """One benchmark run of one trial."""

    request_rate: float
    """Offered rate (req/s; inf = all at once)."""
    metrics: dict[str, float]
    """vLLM's numeric result keys (request_throughput, p99_ttft_ms, request_goodput, ...)."""
    slo_attainment: float | None
    """Good requests / offered requests, vLLM's goodput definition (llm_emu.slo; None without SLOs)."""
    elapsed_s: float
    """Wall time of the benchmark run."""


@dataclass(frozen=True)
class TrialResult:
    """Outcome of a trial after all its attempts."""

    trial_hash: str
    status: Literal["ok", "failed"]
    rates: tuple[RateResult, ...] = ()
    """One entry per rate (empty when failed)."""
    error: str | None = None
    """Last attempt's error when failed."""
    attempt_errors: tuple[str, ...] = ()
    """The error of every failed attempt, in order (also those followed by a successful retry)."""
    attempts: int = 1
    """Attempts made (1 = no retry)."""
    node: str | None = None
    """Ray node id and host of the successful (or last) attempt."""
    elapsed_s: float = 0.0
    """Wall time of the last attempt, server start included."""
    log_path: str | None = None
    """Server log of the last attempt."""


class TrialRunner(Protocol):
    """Runs one attempt of a trial; raises on failure (the controller retries)."""

    def __call__(self, trial: Trial, ctx: TrialContext) -> tuple[RateResult, ...]: ...


@dataclass(frozen=True)
class ServerRunner:
    """The real runner: serve the trial's config through a measure loop, vLLM's benchmark client per rate."""

    loop: MeasureLoop | None = None
    """How the config is served and measured (None: by the trial's clock, see ``loop_for``)."""

    def __call__(self, trial: Trial, ctx: TrialContext) -> tuple[RateResult, ...]:
        """Serve the trial, benchmark every rate (prefix cache reset in between), tear down."""
        from llm_emu.measure import MeasureTarget
        from llm_emu.server import ServerSpec, free_port

        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        spec = ServerSpec(
            kind=trial.kind,  # type: ignore[arg-type]
            model=trial.model, vllm_args=trial.vllm_flags(), profile=trial.profile,
            port=free_port(), log_path=ctx.log_file(trial), startup_timeout_s=ctx.startup_timeout_s,
        )
        runs = [bench_run(trial, ctx, rate) for rate in trial.workload.request_rates]
        loop = self.loop or loop_for(trial)
        measured = loop.measure(MeasureTarget(server=spec, tokenizer_model=trial.model), runs)
        return tuple(
            RateResult(request_rate=m.run.workload.request_rate, metrics=scalar_metrics(m.result),
                       slo_attainment=slo_attainment(m.result, trial.slo, trial.workload.num_prompts),
                       elapsed_s=m.wall_s)
            for m in measured
        )


def loop_for(trial: Trial) -> MeasureLoop:
    """The measure loop of the trial's clock: a server process (wall) or vLLM's engine in virtual time."""
    from llm_emu.measure import measure_loop

    if trial.clock == "virtual":
        return measure_loop("virtual", host=trial.host_model)
    return measure_loop("server")


def scalar_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric run-level values of vLLM's result dict (``scalar_part`` without strings and flags)."""
    from llm_emu.benchclient import scalar_part

    return {k: float(v) for k, v in scalar_part(result).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def bench_run(trial: Trial, ctx: TrialContext, rate: float) -> BenchRun:
    """The benchmark run of ``trial``'s workload at ``rate`` (vLLM's JSON under ``ctx.raw_dir``)."""
    from llm_emu.benchclient import Workload
    from llm_emu.measure import BenchRun

    w = trial.workload
    workload = Workload(
        dataset=w.dataset, num_prompts=w.num_prompts, request_rate=rate, burstiness=w.burstiness,
        seed=w.seed, max_concurrency=w.max_concurrency, random_input_len=w.random_input_len,
        random_output_len=w.random_output_len, sharegpt_output_len=w.sharegpt_output_len,
        ignore_eos=w.ignore_eos,
    )
    return BenchRun(workload=workload, goodput=trial.slo.goodput() if trial.slo else None,
                    result_dir=ctx.raw_dir(trial, rate), label=f"rate={rate_name(rate)}")
