"""The measure loop in virtual time: the same MeasureTarget and BenchRuns as the server loop, no server.

Registered as ``measure_loop("virtual")``. A session is one ``VirtualServer`` (vLLM's engine in-process on a
virtual clock) living in a runner process (``python -m llm_emu.virtual.runner --serve``), or in this process
when it already runs the emulator's vLLM platform (a Ray actor started with ``runner_env()``), which saves
importing vLLM for every trial. Results are vLLM's client result dicts, also saved to ``run.result_dir`` as
the client would, with ``result_file`` set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.fsutil import atomic_write_text
from llm_emu.measure.base import BenchRun, MeasureLoop, MeasureSession, MeasureTarget
from llm_emu.virtual.host import HostModel, resolve_host


def virtual_spec(target: MeasureTarget, host: HostModel) -> dict[str, Any]:
    """The runner's JSON spec for an emulated server target (`llm-emu serve` flags split off)."""
    from llm_emu.serve import add_cli_args

    server = target.server
    if server.kind != "emulated" or not server.profile:
        raise EmuError("virtual time emulates a profile; real vLLM servers run in wall-clock mode only "
                       "(use clock: wall for kind=real)")
    parser = argparse.ArgumentParser(add_help=False)
    add_cli_args(parser)
    ours, vllm_args = parser.parse_known_args(["--profile", server.profile, "--model", server.model,
                                               *server.vllm_args])
    return {"model": server.model, "profile": server.profile, "vllm_args": vllm_args, "oracle": ours.oracle,
            "seed": ours.seed, "host": asdict(host)}


def _cell(target: MeasureTarget, run: BenchRun) -> dict[str, Any]:
    return {"workload": asdict(run.workload), "goodput": run.goodput, "client_args": list(run.client_args)}


def _in_this_process() -> bool:
    """Whether vLLM in this process uses (or will use) the emulator's platform."""
    from llm_emu.engine.plugin import GATE_ENV

    if os.environ.get(GATE_ENV) != "1" or os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        return False
    import vllm.platforms as platforms

    current = getattr(platforms, "_current_platform", None)
    return current is None or type(current).__name__ == "EmuPlatform"


@dataclass(frozen=True)
class VirtualMeasureLoop(MeasureLoop):
    """Benchmark runs in virtual time; deterministic and independent of machine load."""

    host: str | None = None
    """Host model: None/"default" (the shipped one), "none" (pure device time) or a JSON file."""

    def host_model(self) -> HostModel:
        """The host model this loop charges."""
        return resolve_host(self.host)

    @contextlib.contextmanager
    def open(self, target: MeasureTarget) -> Iterator[MeasureSession]:
        spec = virtual_spec(target, self.host_model())
        if _in_this_process():
            from llm_emu.virtual.runner import build_server

            yield _InProcessSession(target, build_server(spec))
            return
        with _RunnerProcess(target) as proc:
            yield _RunnerSession(target, proc, proc.call({"op": "open", "spec": spec})["startup_s"])


class _VirtualSession(MeasureSession):
    def _save(self, run: BenchRun, result: dict[str, Any]) -> dict[str, Any]:
        out = Path(run.result_dir) if run.result_dir is not None else Path(tempfile.mkdtemp(prefix="llm-emu-v-"))
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"vllm-bench-virtual-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.json"
        atomic_write_text(path, json.dumps(result))
        result["result_file"] = str(path)
        return result


class _InProcessSession(_VirtualSession):
    def __init__(self, target: MeasureTarget, server: Any) -> None:
        super().__init__(target)
        self.server = server

    @property
    def startup_s(self) -> float:
        return float(self.server.build_wall_s)

    def _benchmark(self, run: BenchRun) -> dict[str, Any]:
        from llm_emu.virtual.runner import run_cell

        return self._save(run, run_cell(self.server, _cell(self.target, run)))

    def _reset_prefix_cache(self) -> None:
        self.server.reset_prefix_cache()


class _RunnerSession(_VirtualSession):
    def __init__(self, target: MeasureTarget, proc: _RunnerProcess, startup_s: float) -> None:
        super().__init__(target)
        self.proc = proc
        self._startup_s = startup_s

    @property
    def startup_s(self) -> float:
        return self._startup_s

    def _benchmark(self, run: BenchRun) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="llm-emu-v-") as tmp:
            path = Path(tmp) / "result.json"
            self.proc.call({"op": "run", "cell": _cell(self.target, run), "out": str(path)})
            return self._save(run, json.loads(path.read_text()))

    def _reset_prefix_cache(self) -> None:
        self.proc.call({"op": "reset"})


class _RunnerProcess:
    """A ``llm_emu.virtual.runner --serve`` child: JSON commands on stdin, replies on a pipe."""

    def __init__(self, target: MeasureTarget) -> None:
        self.log_path = target.server.log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._replies: Any = None

    def __enter__(self) -> _RunnerProcess:
        from llm_emu.virtual import runner_env

        read_fd, write_fd = os.pipe()
        log: Any = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llm_emu.virtual.runner", "--serve", str(write_fd)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                env=runner_env(), start_new_session=True)
        finally:
            os.close(write_fd)
            if log is not subprocess.DEVNULL:
                log.close()
        self._replies = os.fdopen(read_fd, "r")
        return self

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise EmuError(f"the virtual-time runner exited ({self._where()})") from None
        line = self._replies.readline()
        if not line:
            raise EmuError(f"the virtual-time runner exited with {self.proc.wait()} ({self._where()})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise EmuError(f"virtual run failed: {answer.get('error')}")
        return answer

    def _where(self) -> str:
        return f"log: {self.log_path}" if self.log_path else "no log file; set ServerSpec.log_path"

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.call({"op": "close"})
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._replies is not None:
            self._replies.close()
