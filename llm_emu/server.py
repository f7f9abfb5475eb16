"""Start, health-check and stop a vLLM OpenAI server (real or emulated) as a child process.

INTERFACE STUB — being implemented. The signatures below are the contract other modules code against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class ServerSpec:
    """What server to start."""

    kind: Literal["emulated", "real"]
    """"emulated": `llm-emu serve` (needs profile); "real": vLLM's own server on this machine's device."""
    model: str
    """Shipped model name (profiles/models/<name>), model dir, or HF id; resolved by llm_emu.models."""
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
    raise NotImplementedError


class ServerProcess:
    """A running server; use as a context manager.

    ``start()`` blocks until GET /health answers 200 (raises ServerError with the log tail on death or
    timeout); ``stop()`` terminates the whole process group (SIGINT, then SIGKILL after a grace period).
    """

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec

    @property
    def base_url(self) -> str:
        """e.g. http://127.0.0.1:8000"""
        raise NotImplementedError

    @property
    def served_model(self) -> str:
        """The model name the server answers to (for the benchmark client's --model)."""
        raise NotImplementedError

    def start(self) -> ServerProcess:
        raise NotImplementedError

    def reset_prefix_cache(self) -> None:
        """POST /reset_prefix_cache (between benchmark runs)."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
