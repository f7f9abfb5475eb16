"""ServerProcess: command building, health polling, fail-fast on death, process-group teardown."""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llm_emu.errors import ServerError
from llm_emu.server import ServerProcess, ServerSpec, build_command, free_port


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_real_command_cpu_defaults() -> None:
    cmd = build_command(ServerSpec(kind="real", model="tiny-llama"), 8123, cpu_only=True)
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--tokenizer-mode") + 1] == "mistral"
    assert cmd[cmd.index("--served-model-name") + 1] == "tiny-llama"
    assert cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--load-format") + 1] == "dummy"
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.3"


def test_real_command_respects_given_flags() -> None:
    spec = ServerSpec(
        kind="real",
        model="org/some-model",
        vllm_args=("--load-format=auto", "--gpu-memory-utilization", "0.5"),
    )
    cmd = build_command(spec, 8000, cpu_only=True)
    assert cmd[3:5] == ["--model", "org/some-model"]
    assert "--tokenizer-mode" not in cmd
    assert cmd.count("--gpu-memory-utilization") == 1 and "0.5" in cmd
    assert "--load-format" not in cmd and "--load-format=auto" in cmd
    gpu = build_command(ServerSpec(kind="real", model="org/some-model"), 8000, cpu_only=False)
    assert "--gpu-memory-utilization" not in gpu


def test_emulated_command() -> None:
    spec = ServerSpec(kind="emulated", model="tiny-llama", profile="aic:h100_sxm", vllm_args=("--max-num-seqs", "8"))
    assert build_command(spec, 9000) == [
        sys.executable, "-m", "llm_emu.cli", "serve", "--profile", "aic:h100_sxm", "--model", "tiny-llama",
        "--host", "127.0.0.1", "--port", "9000", "--max-num-seqs", "8",
    ]  # fmt: skip
    with pytest.raises(ServerError, match="profile"):
        build_command(ServerSpec(kind="emulated", model="tiny-llama"), 9000)


def test_served_model_and_base_url() -> None:
    assert ServerProcess(ServerSpec(kind="real", model="tiny-llama", port=8011)).served_model == "tiny-llama"
    assert ServerProcess(ServerSpec(kind="real", model="org/m")).served_model == "org/m"
    named = ServerProcess(ServerSpec(kind="real", model="org/m", vllm_args=("--served-model-name", "x")))
    assert named.served_model == "x"
    assert ServerProcess(ServerSpec(kind="real", model="m", port=8011)).base_url == "http://127.0.0.1:8011"
    ServerProcess(ServerSpec(kind="real", model="m")).stop()  # stop before start: a no-op


class _FakeServer(ServerProcess):
    """Runs an arbitrary command instead of vLLM."""

    def __init__(self, spec: ServerSpec, argv: list[str]) -> None:
        super().__init__(spec)
        self.argv = argv

    def command(self) -> list[str]:
        return [a.replace("{port}", str(self.port)) for a in self.argv]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_fake_server_health_and_group_teardown(tmp_path: Path) -> None:
    (tmp_path / "health").write_text("ok")
    pidfile = tmp_path / "grandchild.pid"
    # A shell that leaves a grandchild (like vLLM's EngineCore) and then becomes an HTTP server with /health.
    script = (
        f"sleep 300 & echo $! > {pidfile}; "
        f"exec {sys.executable} -m http.server {{port}} --bind 127.0.0.1 --directory {tmp_path}"
    )
    srv = _FakeServer(ServerSpec(kind="real", model="m", log_path=tmp_path / "srv.log"), ["sh", "-c", script])
    with srv:
        assert srv.running and srv.startup_s is not None
        with urllib.request.urlopen(srv.base_url + "/health", timeout=5) as r:
            assert r.status == 200
        with pytest.raises(ServerError, match="501"):  # http.server cannot POST: an error, not ignored
            srv.reset_prefix_cache()
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not srv.running
    assert not _alive(grandchild), "stop() must kill the whole process group"
    srv.stop()  # idempotent


def test_death_at_startup_raises_with_log_tail(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: bad flag --frobnicate'); sys.exit(3)"]
    srv = _FakeServer(ServerSpec(kind="real", model="m", log_path=tmp_path / "srv.log"), argv)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"(?s)exited with code 3.*boom: bad flag --frobnicate"):
        srv.start()
    assert time.monotonic() - t0 < 10
    assert not srv.running


def test_startup_timeout_raises_and_kills(tmp_path: Path) -> None:
    srv = _FakeServer(
        ServerSpec(kind="real", model="m", startup_timeout_s=1.0, log_path=tmp_path / "srv.log"),
        ["sleep", "60"],
    )
    with pytest.raises(ServerError, match="not healthy"):
        srv.start()
    assert srv.proc is not None and srv.proc.poll() is not None


@pytest.mark.slow
@pytest.mark.ci_e2e
def test_real_vllm_bad_flag_fails_fast(tmp_path: Path) -> None:
    spec = ServerSpec(kind="real", model="tiny-llama", vllm_args=("--no-such-flag",), log_path=tmp_path / "v.log")
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"(?s)exited with code.*no-such-flag"):
        ServerProcess(spec).start()
    assert time.monotonic() - t0 < 120


def test_server_keep_alive_outlasts_the_benchmark_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's benchmark client pools connections for 60 s; a server that closes idle ones sooner races it (a
    request written to a closing connection fails). A value the user set, or the spec's, wins."""
    monkeypatch.delenv("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", raising=False)
    env = ServerProcess(ServerSpec(kind="real", model="tiny-llama")).child_env()
    assert int(env["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"]) > 60 and env["VLLM_SERVER_DEV_MODE"] == "1"
    monkeypatch.setenv("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "7")
    assert ServerProcess(ServerSpec(kind="real", model="tiny-llama")).child_env()["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"] == "7"
    spec = ServerSpec(kind="real", model="tiny-llama", env={"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "9"})
    assert ServerProcess(spec).child_env()["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"] == "9"
