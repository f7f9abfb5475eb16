"""Start, health-check and stop a vLLM OpenAI server (real or emulated) as a child process.

The child runs in its own process group (vLLM forks an EngineCore and workers), so ``stop()`` can take the
whole tree down: SIGINT to the group, then SIGKILL after a grace period. A ``weakref.finalize`` guard does the
same on garbage collection and at interpreter exit, and ``llm_emu.lifetime.guard_children`` does it when the
process that started the server dies any other way (SIGKILL included): no server outlives its owner.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llm_emu.errors import ServerError
from llm_emu.flags import flag_given
from llm_emu.lifetime import guard_children
from llm_emu.models import resolve_model
from llm_emu.pythonpath import child_pythonpath

KEEP_ALIVE_S = 75
"""Seconds the server keeps an idle HTTP connection (vLLM's VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 by default). vLLM's
benchmark client pools connections for 60 s: with the server's 5 s, a request sent on a connection the server is
closing fails ("Cannot write to closing transport"), a race that light-load runs hit. A user's value is kept."""

STOP_GRACE_S = 15.0
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class ServerSpec:
    """What server to start."""

    kind: Literal["emulated", "real"]
    """"emulated": `llm-emu serve` (needs profile); "real": vLLM's own server on this machine's device."""
    model: str
    """Shipped model name (llm_emu/data/models/<name>), model dir, or HF id; resolved by llm_emu.models."""
    vllm_args: tuple[str, ...] = ()
    """Extra `vllm serve` flags, e.g. ("--max-num-seqs", "64", "--enable-chunked-prefill")."""
    profile: str | None = None
    """Emulated only: a pack directory or a name such as "aic:h100_sxm"."""
    host: str = "127.0.0.1"
    port: int | None = None
    """None: pick a free port."""
    log_path: Path | None = None
    """Where the server's stdout+stderr go (None: a temp file)."""
    startup_timeout_s: float = 600.0
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the child."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to 0, read, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def has_accelerator() -> bool:
    """Whether this machine exposes a GPU device node (NVIDIA or AMD); cheap, imports nothing."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


def build_command(spec: ServerSpec, port: int, *, cpu_only: bool | None = None) -> list[str]:
    """The argv that starts the server described by ``spec`` on ``port``."""
    args = list(spec.vllm_args)
    if spec.kind == "real":
        if cpu_only is None:
            cpu_only = not has_accelerator()
        if not flag_given(args, "load-format"):
            args += ["--load-format", "dummy"]
        if cpu_only and not flag_given(args, "gpu-memory-utilization"):
            # On vLLM's CPU build this is a fraction of one NUMA node's host RAM, not of a GPU's memory: a
            # GPU-sized default would claim most of the host; 0.3 leaves room for the server's own processes.
            args += ["--gpu-memory-utilization", "0.3"]
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            *resolve_model(spec.model).server_flags(),
            "--host",
            spec.host,
            "--port",
            str(port),
            *args,
        ]
    if spec.kind == "emulated":
        if not spec.profile:
            raise ServerError("an emulated server needs a profile; set ServerSpec.profile (e.g. 'aic:h100_sxm')")
        return [
            sys.executable,
            "-m",
            "llm_emu.cli",
            "serve",
            "--profile",
            spec.profile,
            "--model",
            spec.model,
            "--host",
            spec.host,
            "--port",
            str(port),
            *args,
        ]
    raise ServerError(f"unknown server kind {spec.kind!r}; use 'emulated' or 'real'")


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT the child's process group, wait, then SIGKILL it (the group: vLLM's engine procs too)."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    if proc.poll() is None:
        try:
            os.killpg(pgid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left in the group (stragglers after the leader exited, or a leader ignoring SIGINT).
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
        pass


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return ""


class ServerProcess:
    """A running server; use as a context manager.

    ``start()`` blocks until GET /health answers 200 (raises ServerError with the log tail on death or
    timeout); ``stop()`` terminates the whole process group (SIGINT, then SIGKILL after a grace period).
    """

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.port: int = spec.port if spec.port is not None else free_port(spec.host)
        self.log_path: Path = spec.log_path if spec.log_path is not None else self._temp_log()
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        """Seconds from spawn to the first healthy answer (after start())."""
        self._finalizer: weakref.finalize | None = None
        self._served_model: str | None = None

    @staticmethod
    def _temp_log() -> Path:
        fd, name = tempfile.mkstemp(prefix="llm-emu-server-", suffix=".log")
        os.close(fd)
        return Path(name)

    @property
    def base_url(self) -> str:
        """e.g. http://127.0.0.1:8000"""
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def served_model(self) -> str:
        """The model name the server answers to (for the benchmark client's --model)."""
        if self._served_model is None:
            args = list(self.spec.vllm_args)
            name: str | None = None
            for i, a in enumerate(args):
                if a == "--served-model-name" and i + 1 < len(args):
                    name = args[i + 1]
                elif a.startswith("--served-model-name="):
                    name = a.split("=", 1)[1]
            self._served_model = name or resolve_model(self.spec.model).served_name or self.spec.model
        return self._served_model

    def command(self) -> list[str]:
        """The argv this server runs (or will run)."""
        return build_command(self.spec, self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _fail(self, what: str) -> ServerError:
        tail = log_tail(self.log_path)
        return ServerError(f"{what}; see {self.log_path}; last log lines:\n{tail}")

    def child_env(self) -> dict[str, str]:
        """The server's environment. Dev mode turns on /reset_prefix_cache; PYTHONPATH lets `-m llm_emu.cli` run
        a source tree from any cwd; the HTTP keep-alive outlasts the benchmark client's (``KEEP_ALIVE_S``)."""
        env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "PYTHONUNBUFFERED": "1"}
        env.setdefault("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", str(KEEP_ALIVE_S))
        env.update(self.spec.env)
        if pythonpath := child_pythonpath(env):
            env["PYTHONPATH"] = pythonpath
        return env

    def start(self) -> ServerProcess:
        if self.running:
            return self
        cmd = self.command()
        guard_children()  # the server leads its own process group: only this makes it die with its owner
        env = self.child_env()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._finalizer = weakref.finalize(self, _kill_group, self.proc)
        deadline = t0 + self.spec.startup_timeout_s
        url = self.base_url + "/health"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.stop()
                raise self._fail(f"{self.spec.kind} server exited with code {rc} during startup")
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise self._fail(
                    f"{self.spec.kind} server not healthy after {self.spec.startup_timeout_s:.0f} s "
                    "(raise ServerSpec.startup_timeout_s if it is just slow)"
                )
            time.sleep(0.5)
        self.startup_s = time.monotonic() - t0
        return self

    def _post(self, path: str, timeout: float = 30.0) -> int:
        req = urllib.request.Request(self.base_url + path, data=b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def reset_prefix_cache(self) -> None:
        """POST /reset_prefix_cache (between benchmark runs)."""
        try:
            status = self._post("/reset_prefix_cache")
        except (urllib.error.URLError, OSError) as e:
            raise ServerError(
                f"cannot reach {self.base_url} to reset the prefix cache ({e}); is the server running?"
            ) from e
        if status not in (200, 404):  # 404: the endpoint is off (VLLM_SERVER_DEV_MODE unset)
            raise ServerError(f"POST {self.base_url}/reset_prefix_cache answered HTTP {status}")

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs _kill_group once; later calls are no-ops
            self._finalizer = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
