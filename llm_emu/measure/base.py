"""The measure loop's contract: serve one engine config, run vLLM's benchmark once per ``BenchRun``, in order.

A :class:`MeasureLoop` turns a :class:`MeasureTarget` (what to serve) into a :class:`MeasureSession` (the
engine up and ready); the session runs :class:`BenchRun` s one after the other and returns one
:class:`Measurement` per run, holding vLLM's own result dict. `llm-emu sweep`, `validate` and `profile` all
measure through this contract, so an implementation that serves differently (a vLLM server process today, an
in-process engine on a virtual clock next) plugs into all three at once.

Contract for implementations:

* Results are vLLM's result dicts exactly as :func:`llm_emu.benchclient.run_benchmark` returns them (metric
  keys such as ``request_throughput``, ``p99_ttft_ms``, ``request_goodput``, per-request lists, ``result_file``;
  plain Python numbers). A run in which no request completes raises :class:`~llm_emu.errors.WorkloadError`.
* Runs execute sequentially, in the given order, against one engine instance per session; with
  ``MeasureTarget.reset_prefix_cache`` every run after the first starts from an empty prefix cache.
* ``on_result`` is called with each measurement, in order, as soon as the implementation has it (the server
  loop: right after the run, before the next one starts), so a caller that persists there loses nothing
  already measured when a later run (or the process) dies.
* Leaving the session's context stops everything it started, also on errors and KeyboardInterrupt.
* Sessions are not thread-safe; use one per thread.

An implementation subclasses :class:`MeasureLoop` (``open``) and :class:`MeasureSession` (``startup_s``,
``_benchmark``, ``_reset_prefix_cache``); one that answers runs in batches (e.g. one worker process per
session) may override ``MeasureSession.run_all`` and ``MeasureLoop.measure`` instead, keeping the contract.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from llm_emu.benchclient import Workload
from llm_emu.server import ServerSpec

T = TypeVar("T")


class Pinning(Protocol):
    """CPU placement of a hardware-loop run (llm_emu.capture.cpuset.ServerPinning implements it)."""

    def client(self) -> AbstractContextManager[None]:
        """Context in which the benchmark client (this process) runs, server start included."""

    def apply_to_server(self, server: Any) -> dict[int, str]:
        """Place a healthy server's processes; returns pid -> role ("device" / "host")."""


@dataclass(frozen=True)
class MeasureTarget:
    """What to serve for a series of benchmark runs."""

    server: ServerSpec
    """Kind (emulated/real), model, profile, `vllm serve` flags, log file and environment."""
    tokenizer_model: str | None = None
    """Model argument the benchmark client takes its tokenizer from (None: ``server.model``); tokenizer flags
    in ``server.vllm_args`` win, so client and server load the same tokenizer."""
    reset_prefix_cache: bool = True
    """Empty the prefix cache before every run after the first, so each run starts cold (as `vllm bench sweep`)."""
    pinning: Pinning | None = None
    """CPU core split for runs on a CPU machine (None: OS defaults); ignored by in-process loops."""

    @property
    def tokenizer(self) -> str:
        """The tokenizer source for the client."""
        return self.tokenizer_model or self.server.model


@dataclass(frozen=True)
class BenchRun:
    """One run of vLLM's benchmark client."""

    workload: Workload
    """The load (dataset, prompts, rate, burstiness, seed, ...)."""
    goodput: dict[str, float] | None = None
    """SLOs in ms for vLLM's ``--goodput`` (keys ttft, tpot, e2el); None: no goodput."""
    result_dir: Path | None = None
    """Where vLLM saves its result JSON (None: a temp dir)."""
    client_args: tuple[str, ...] = ()
    """Further `vllm bench serve` flags, e.g. ("--temperature", "0")."""
    label: str = ""
    """Short description for progress output, e.g. ``rate=4 burstiness=1``."""


@dataclass(frozen=True)
class Measurement:
    """The outcome of one BenchRun."""

    index: int
    """Position of the run within its session (0-based)."""
    run: BenchRun
    """The run that produced it."""
    result: dict[str, Any] = field(repr=False)
    """vLLM's result dict (see the module docstring)."""
    wall_s: float
    """Wall time of the run (client start to result)."""
    startup_s: float
    """Seconds the session's engine took to become ready (the same for every run of a session)."""


OnResult = Callable[[Measurement], None]
"""Called with each measurement as soon as its run finishes (persist it here)."""


class MeasureSession(ABC):
    """An engine config that is up and takes benchmark runs; made by :meth:`MeasureLoop.open`."""

    def __init__(self, target: MeasureTarget) -> None:
        self.target = target
        self.runs_done = 0
        """Runs finished in this session."""

    @property
    @abstractmethod
    def startup_s(self) -> float:
        """Seconds the engine took to become ready."""

    @property
    def pinned(self) -> dict[int, str]:
        """Processes placed by the target's pinning, pid -> role (empty when nothing was pinned)."""
        return {}

    @abstractmethod
    def _benchmark(self, run: BenchRun) -> dict[str, Any]:
        """Run vLLM's benchmark client for ``run``; return its result dict."""

    @abstractmethod
    def _reset_prefix_cache(self) -> None:
        """Empty the engine's prefix cache."""

    def run(self, run: BenchRun) -> Measurement:
        """Run one benchmark (after a prefix-cache reset unless it is the session's first run)."""
        if self.runs_done and self.target.reset_prefix_cache:
            self._reset_prefix_cache()
        t0 = time.monotonic()
        result = self._benchmark(run)
        m = Measurement(self.runs_done, run, result, time.monotonic() - t0, self.startup_s)
        self.runs_done += 1
        return m

    def run_all(self, runs: Sequence[BenchRun], *, on_result: OnResult | None = None,
                progress: str | None = None) -> list[Measurement]:
        """Run ``runs`` in order; ``on_result`` after each; a tqdm bar on stderr named ``progress`` if given."""
        out: list[Measurement] = []
        for run in _progress(runs, progress):
            m = self.run(run)
            if on_result is not None:
                on_result(m)
            out.append(m)
        return out


def _progress(runs: Sequence[BenchRun], desc: str | None) -> Iterator[BenchRun]:
    if desc is None:
        yield from runs
        return
    yield from progress_bar(runs, desc, lambda run: run.label)


def progress_bar(items: Sequence[T], desc: str, label: Callable[[T], str]) -> Iterator[T]:
    """``items`` in order, with a tqdm bar on stderr named ``desc`` showing ``label(item)`` of the current one."""
    from tqdm import tqdm

    bar = tqdm(items, desc=desc, unit="run", file=sys.stderr)
    for item in bar:
        bar.set_postfix_str(label(item))
        yield item


class MeasureLoop(ABC):
    """Serves a MeasureTarget and benchmarks it; see the module docstring for the contract.

    Implementations must be picklable (the sweep ships them to Ray actors) and hold no open resources
    outside :meth:`open`.
    """

    @abstractmethod
    def open(self, target: MeasureTarget) -> AbstractContextManager[MeasureSession]:
        """Bring ``target`` up; the context yields a ready session and tears everything down on exit."""

    def measure(self, target: MeasureTarget, runs: Sequence[BenchRun], *, on_result: OnResult | None = None,
                progress: str | None = None) -> list[Measurement]:
        """Serve ``target``, run ``runs`` in order, tear down; one Measurement per run.

        Args:
            target: what to serve.
            runs: the benchmark runs, executed in this order against one engine instance.
            on_result: called with each measurement as soon as its run finishes (persist it there).
            progress: show a progress bar on stderr with this name (None: quiet).

        Returns:
            The measurements, in the order of ``runs``.
        """
        with self.open(target) as session:
            return session.run_all(runs, on_result=on_result, progress=progress)
