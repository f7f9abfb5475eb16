"""The measure loop over a vLLM server process (emulated or real) and vLLM's benchmark client over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from llm_emu.measure.base import BenchRun, MeasureLoop, MeasureSession, MeasureTarget
from llm_emu.server import ServerSpec


class ServerHandle(Protocol):
    """What the loop needs of a server (llm_emu.server.ServerProcess; tests pass stand-ins)."""

    @property
    def base_url(self) -> str: ...

    @property
    def served_model(self) -> str: ...

    @property
    def startup_s(self) -> float | None: ...

    def reset_prefix_cache(self) -> None: ...

    def __enter__(self) -> ServerHandle: ...

    def __exit__(self, *exc: object) -> None: ...


ServerFactory = Callable[[ServerSpec], ServerHandle]
Benchmark = Callable[..., dict[str, Any]]
"""Signature of llm_emu.benchclient.run_benchmark."""


@dataclass(frozen=True)
class ServerLoop(MeasureLoop):
    """Start ``target.server`` as a child process, benchmark it with vLLM's own client, stop it.

    The server starts inside the pinning's client context (so it inherits the host cores) and is placed once
    healthy; it is stopped (whole process group) when the session ends, also on errors.
    """

    server_factory: ServerFactory | None = None
    """Builds the server from its spec (None: llm_emu.server.ServerProcess)."""
    benchmark: Benchmark | None = None
    """Runs one benchmark (None: llm_emu.benchclient.run_benchmark)."""

    @contextlib.contextmanager
    def open(self, target: MeasureTarget) -> Iterator[MeasureSession]:
        """Start the server (blocks until healthy), yield a session, stop the server."""
        from llm_emu.benchclient import run_benchmark
        from llm_emu.server import ServerProcess

        factory: ServerFactory = self.server_factory or ServerProcess
        pin = target.pinning
        with pin.client() if pin else contextlib.nullcontext(), factory(target.server) as server:
            pinned = pin.apply_to_server(server) if pin else {}
            yield _ServerSession(target, server, pinned, self.benchmark or run_benchmark)


class _ServerSession(MeasureSession):
    def __init__(self, target: MeasureTarget, server: ServerHandle, pinned: dict[int, str],
                 benchmark: Benchmark) -> None:
        super().__init__(target)
        self.server = server
        self._pinned = pinned
        self._run_benchmark = benchmark

    @property
    def startup_s(self) -> float:
        return float(self.server.startup_s or 0.0)

    @property
    def pinned(self) -> dict[int, str]:
        return dict(self._pinned)

    def _benchmark(self, run: BenchRun) -> dict[str, Any]:
        return self._run_benchmark(self.server.base_url, self.server.served_model, run.workload,
                                   tokenizer_model=self.target.tokenizer, goodput=run.goodput,
                                   result_dir=run.result_dir, extra_args=run.client_args,
                                   server_args=self.target.server.vllm_args)

    def _reset_prefix_cache(self) -> None:
        self.server.reset_prefix_cache()
