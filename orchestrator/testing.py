"""Fake trial runners for tests and demos: exercise Ray, retries and results without starting vLLM.

They live in the package (like optuna.testing) so that Ray workers can unpickle them by reference.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_emu.measure import BenchRun, MeasureLoop, MeasureSession, MeasureTarget
from llm_emu.slo import slo_attainment
from orchestrator.runner import RateResult, TrialContext
from orchestrator.trials import Trial


def fake_metrics(trial: Trial, rate: float) -> dict[str, float]:
    """Plausible, deterministic vLLM-like metrics: latency grows with load, shrinks with batch budget."""
    engine = trial.engine
    budget = float(engine.get("max_num_batched_tokens") or 2048)
    chunked = 0.8 if engine.get("enable_chunked_prefill", True) else 1.0
    load = 50.0 if math.isinf(rate) else rate
    ttft = chunked * (40.0 + 30.0 * load * 2048.0 / budget)
    tpot = 8.0 + 0.6 * load
    n = trial.workload.num_prompts
    throughput = min(load, 20.0 * budget / 2048.0)
    good = round(n * (0.99 if ttft < 300 else 0.5))
    return {
        "completed": float(n), "duration": n / throughput, "request_throughput": throughput,
        "output_throughput": throughput * 200.0, "request_goodput": good * throughput / n,
        "mean_ttft_ms": ttft, "median_ttft_ms": ttft, "p99_ttft_ms": 2.5 * ttft,
        "mean_tpot_ms": tpot, "median_tpot_ms": tpot, "p99_tpot_ms": 1.5 * tpot,
        "mean_itl_ms": tpot, "p99_itl_ms": 2.0 * tpot, "mean_e2el_ms": ttft + 200 * tpot,
        "p99_e2el_ms": 2.5 * ttft + 300 * tpot,
    }


@dataclass(frozen=True)
class FakeRunner:
    """Sleeps ``seconds_per_rate`` per rate and returns ``fake_metrics``; can fail or hang on cue.

    Failure cues are files, so they work across processes and survive the actor being killed:
    ``fail_first`` attempts of each trial raise; a trial whose hash is in ``always_fail`` always raises.
    Each attempt touches ``<marker_dir>/<hash>.<attempt>.started`` when it begins (tests wait on it).
    """

    seconds_per_rate: float = 0.0
    """Simulated benchmark duration per rate."""
    fail_first: int = 0
    """Attempts of every trial that raise before one succeeds."""
    always_fail: tuple[str, ...] = ()
    """Trial hashes that never succeed."""
    marker_dir: str | None = None
    """Directory for start markers (None: none written)."""
    block_first_attempt_s: float = 0.0
    """Extra sleep in attempt 0 only (time for a test to kill the actor mid-trial)."""
    block_only: tuple[str, ...] = ()
    """Apply ``block_first_attempt_s`` only to these trial hashes (empty: to all)."""
    spawn_server: bool = False
    """Start a stand-in server (``sh`` + ``sleep``, own process group, id in ``<hash>.<attempt>.server``),
    stopped at the end of the attempt; tests check it does not outlive a killed actor."""

    def __call__(self, trial: Trial, ctx: TrialContext) -> tuple[RateResult, ...]:
        """One fake attempt."""
        if not self.spawn_server:
            return self._attempt(trial, ctx)
        # like vLLM's API server + EngineCore: a group leader with a child of its own
        server = subprocess.Popen(["sh", "-c", "sleep 600; true"], start_new_session=True)
        try:
            if self.marker_dir:
                (Path(self.marker_dir) / f"{trial.hash}.{ctx.attempt}.server").write_text(str(server.pid))
            return self._attempt(trial, ctx)
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    def _attempt(self, trial: Trial, ctx: TrialContext) -> tuple[RateResult, ...]:
        if self.marker_dir:
            Path(self.marker_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.marker_dir) / f"{trial.hash}.{ctx.attempt}.started").write_text(str(os.getpid()))
        blocked = not self.block_only or trial.hash in self.block_only
        if ctx.attempt == 0 and self.block_first_attempt_s and blocked:
            time.sleep(self.block_first_attempt_s)
        if trial.hash in self.always_fail:
            raise RuntimeError(f"fake failure of trial {trial.hash}")
        if ctx.attempt < self.fail_first:
            raise RuntimeError(f"fake failure of attempt {ctx.attempt}")
        out = []
        for rate in trial.workload.request_rates:
            time.sleep(self.seconds_per_rate)
            metrics = fake_metrics(trial, rate)
            att = slo_attainment(metrics, trial.slo, trial.workload.num_prompts)
            out.append(RateResult(rate, metrics, att, self.seconds_per_rate))
        return tuple(out)


@dataclass(frozen=True)
class FakeMeasureLoop(MeasureLoop):
    """A measure loop that starts nothing and answers vLLM-shaped result dicts (per-request lists included),
    so ``ServerRunner(loop=FakeMeasureLoop())`` exercises the real trial code (SLO attainment, rows) on Ray."""

    def open(self, target: MeasureTarget) -> AbstractContextManager[MeasureSession]:
        """A session over no server."""
        return contextlib.nullcontext(_FakeSession(target))


class _FakeSession(MeasureSession):
    @property
    def startup_s(self) -> float:
        return 0.0

    def _reset_prefix_cache(self) -> None:
        return None

    def _benchmark(self, run: BenchRun) -> dict[str, Any]:
        """Good requests depend on the config's max_num_seqs and the rate, as vLLM would count them."""
        w = run.workload
        flags = list(self.target.server.vllm_args)
        seqs = int(flags[flags.index("--max-num-seqs") + 1]) if "--max-num-seqs" in flags else 256
        rate = 50.0 if math.isinf(w.request_rate) else w.request_rate
        ttfts = [0.05 + 0.01 * i * rate / seqs for i in range(w.num_prompts)]
        limit = (run.goodput or {}).get("ttft", math.inf) / 1000.0
        good = sum(t <= limit for t in ttfts)
        duration = w.num_prompts / rate + 1.0
        return {"duration": duration, "completed": w.num_prompts, "request_throughput": w.num_prompts / duration,
                "request_goodput": good / duration if run.goodput else None,
                "mean_ttft_ms": 1000 * sum(ttfts) / len(ttfts), "p99_ttft_ms": 1000 * max(ttfts), "ttfts": ttfts,
                "errors": [""] * w.num_prompts}
