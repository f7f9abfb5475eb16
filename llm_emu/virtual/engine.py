"""An emulated vLLM server in virtual time: vLLM's engine in this process, on the emulated worker's clock.

``VirtualServer`` is what ``llm-emu serve`` starts, minus HTTP: the same profile resolution and engine flags,
vLLM's own ``EngineArgs`` parsing (its server parser), vLLM's ``LLMEngine`` with the EngineCore in-process
(scheduler, KV-cache manager, output processor and detokenizer unmodified), and the emulated worker booking
steps on a ``VirtualClock``. ``run`` answers one benchmark run with the result dict of vLLM's client.

The process must have selected the emulator's vLLM platform (``llm_emu.virtual.runner`` does this); use
``llm_emu.virtual.run_virtual`` from anywhere else.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_emu.benchclient import Workload
from llm_emu.engine import compat
from llm_emu.engine.clock import VirtualClock
from llm_emu.errors import EmuError
from llm_emu.virtual.host import NO_HOST, HostModel
from llm_emu.virtual.loop import VirtualLoop
from llm_emu.virtual.workload import client_args, prepare_run


@dataclass(frozen=True)
class VirtualSpec:
    """What to emulate: the same inputs as `llm-emu serve`."""

    model: str
    """Shipped model name, model dir or HF id (llm_emu.models)."""
    profile: str
    """Pack directory, ``aic:<gpu>`` or ``formula:...``."""
    vllm_args: tuple[str, ...] = ()
    """`vllm serve` flags (engine arguments)."""
    oracle: str | None = None
    """Latency oracle (None: the profile's own)."""
    seed: int = 0
    """Seed of latency draws and synthetic tokens."""
    host: HostModel = NO_HOST
    """Host time charged by the virtual clock."""


def _check_platform() -> None:
    from vllm.platforms import current_platform

    if type(current_platform).__name__ != "EmuPlatform":
        raise EmuError("virtual time needs vLLM's emulator platform in this process; call "
                       "llm_emu.virtual.run_virtual (it starts a runner process) instead of VirtualServer")


def engine_flags(spec: VirtualSpec) -> list[str]:
    """The `vllm serve` flags `llm-emu serve` would use, with the worker on a virtual clock."""
    from llm_emu.serve import build_command, load_and_check

    args = argparse.Namespace(profile=spec.profile, model=spec.model, oracle=spec.oracle, seed=spec.seed,
                              trace=None, host="127.0.0.1", port=0, clock="virtual",
                              vllm_args=list(spec.vllm_args))
    cmd = build_command(args, load_and_check(args))
    flags = cmd[3:]  # drop `python -m vllm.entrypoints.openai.api_server`
    for name in ("--host", "--port"):
        i = flags.index(name)
        del flags[i:i + 2]
    return flags


class VirtualServer:
    """One emulated server configuration, answering benchmark runs in virtual time."""

    _ids = itertools.count()

    def __init__(self, spec: VirtualSpec) -> None:
        _check_platform()
        self.spec = spec
        started = time.perf_counter()
        self.engine = compat.make_inproc_engine(compat.engine_args_from_serve_flags(engine_flags(spec)))
        clock = self.engine.collective_rpc("emu_virtual_clock")[0]
        if not isinstance(clock, VirtualClock):
            raise EmuError("the emulated worker is not on a virtual clock; is the emulator's platform active?")
        self.clock = clock
        self.engine.collective_rpc("emu_set_host_cost", args=(spec.host.step_cost,))
        self.build_wall_s = time.perf_counter() - started
        """Wall seconds it took to build the engine."""

    def run(self, workload: Workload, *, goodput: dict[str, float] | None = None,
            client_args_extra: Sequence[str] = (), served_model: str | None = None) -> dict[str, Any]:
        """One benchmark run, as vLLM's client would report it (same keys, same definitions)."""
        started = time.perf_counter()
        args = client_args(served_model or self.spec.model, workload, tokenizer_model=self.spec.model,
                           goodput=goodput, extra_args=client_args_extra)
        run = prepare_run(args)
        loop = VirtualLoop(self.engine, self.clock, self.spec.host, run_id=f"v{next(self._ids)}")
        loop.warm_up(run)
        outputs, duration = loop.run(run)
        result = compat.benchmark_result(run.requests, outputs, duration, compat.client_tokenizer(args), args,
                                         run.goodput)
        result["clock"] = "virtual"
        result["virtual_wall_s"] = time.perf_counter() - started
        return result

    def reset_prefix_cache(self) -> None:
        """Drop the prefix cache between runs (like POST /reset_prefix_cache on a server)."""
        self.engine.reset_prefix_cache()
