"""Stand-ins for a vLLM server and vLLM's benchmark client that log what the measure loop does to them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from llm_emu.benchclient import Workload
from llm_emu.measure.process import ServerLoop
from llm_emu.server import ServerSpec


@dataclass
class Events:
    """Everything the fakes saw, in order, e.g. ["start", "bench 2", "reset", "bench inf", "stop"]."""

    log: list[str] = field(default_factory=list)
    bench_calls: list[dict[str, Any]] = field(default_factory=list)
    specs: list[ServerSpec] = field(default_factory=list)
    """Specs of the servers built."""
    fail_at_rate: float | None = None
    """The fake client raises for a workload at this rate."""


class FakeServer:
    """A ServerHandle that starts nothing."""

    def __init__(self, spec: ServerSpec, events: Events) -> None:
        self.spec, self.events = spec, events
        events.specs.append(spec)
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return "http://fake:1"

    @property
    def served_model(self) -> str:
        return f"served-{self.spec.model}"

    def reset_prefix_cache(self) -> None:
        self.events.log.append("reset")

    def __enter__(self) -> FakeServer:
        self.events.log.append("start")
        self.startup_s = 1.5
        return self

    def __exit__(self, *exc: object) -> None:
        self.events.log.append("stop")


def fake_result(workload: Workload) -> dict[str, Any]:
    """A vLLM-shaped result whose numbers depend on the workload (so mix-ups show)."""
    n = workload.num_prompts
    throughput = min(workload.request_rate, 10.0)
    return {"completed": n, "duration": n / throughput, "request_throughput": throughput, "mean_ttft_ms": 20.0,
            "request_goodput": 0.5 * throughput, "ttfts": [0.02] * n}


def fake_loop(events: Events) -> ServerLoop:
    """A ServerLoop whose server and client are the fakes above."""

    def bench(base_url: str, model: str, workload: Workload, **kw: Any) -> dict[str, Any]:
        rate = workload.request_rate
        events.log.append(f"bench {rate:g}")
        events.bench_calls.append({"base_url": base_url, "model": model, "workload": workload, **kw})
        if rate == events.fail_at_rate:
            raise RuntimeError(f"client died at rate {rate:g}")
        return fake_result(workload)

    return ServerLoop(server_factory=lambda spec: FakeServer(spec, events), benchmark=bench)


@dataclass
class FakePinning:
    """Logs when the client context is entered/left and when the server is placed."""

    events: Events

    def client(self) -> AbstractContextManager[None]:
        @contextmanager
        def ctx() -> Iterator[None]:
            self.events.log.append("pin client")
            try:
                yield
            finally:
                self.events.log.append("unpin client")

        return ctx()

    def apply_to_server(self, server: Any) -> dict[int, str]:
        self.events.log.append(f"place {server.served_model}")
        return {4242: "device"}

