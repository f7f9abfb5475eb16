"""What one trial does: start a server, benchmark it at every request rate, return typed results.

A runner is any picklable callable ``(trial, ctx) -> tuple[RateResult, ...]`` that raises on failure; the
controller ships it to the trial's Ray actor. ``ServerRunner`` is the real one; tests inject fakes
(orchestrator.testing) so the Ray machinery can be exercised without starting vLLM.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from orchestrator.slo import attainment, scalar_metrics
from orchestrator.trials import Trial


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
    """Fraction of requests meeting all SLOs (None without SLOs)."""
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
    """The real runner: one ServerProcess (emulated or real vLLM), vLLM's benchmark client per rate."""

    def __call__(self, trial: Trial, ctx: TrialContext) -> tuple[RateResult, ...]:
        """Start the server, benchmark every rate (prefix cache reset in between), stop the server."""
        from llm_emu.server import ServerProcess, ServerSpec, free_port

        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        spec = ServerSpec(
            kind=trial.kind,  # type: ignore[arg-type]
            model=trial.model, vllm_args=trial.vllm_flags(), profile=trial.profile,
            port=free_port(), log_path=ctx.log_file(trial), startup_timeout_s=ctx.startup_timeout_s,
        )
        results = []
        with ServerProcess(spec) as server:
            for i, rate in enumerate(trial.workload.request_rates):
                if i:
                    server.reset_prefix_cache()  # each rate starts from a cold cache, like vllm bench sweep
                results.append(run_rate(trial, ctx, server.base_url, server.served_model, rate))
        return tuple(results)


def run_rate(trial: Trial, ctx: TrialContext, base_url: str, served: str, rate: float) -> RateResult:
    """One vLLM benchmark run of ``trial``'s workload at ``rate`` against a running server."""
    from llm_emu.benchclient import Workload, run_benchmark

    w = trial.workload
    workload = Workload(
        dataset=w.dataset, num_prompts=w.num_prompts, request_rate=rate, burstiness=w.burstiness,
        seed=w.seed, max_concurrency=w.max_concurrency, random_input_len=w.random_input_len,
        random_output_len=w.random_output_len, sharegpt_output_len=w.sharegpt_output_len,
        ignore_eos=w.ignore_eos,
    )
    raw = ctx.raw_dir(trial, rate)
    raw.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    result = run_benchmark(
        base_url, served, workload, tokenizer_model=trial.model,
        goodput=trial.slo.goodput() if trial.slo else None, result_dir=raw, server_args=trial.vllm_flags(),
    )
    return RateResult(
        request_rate=rate, metrics=scalar_metrics(result),
        slo_attainment=attainment(result, trial.slo, w.num_prompts), elapsed_s=time.monotonic() - start,
    )
